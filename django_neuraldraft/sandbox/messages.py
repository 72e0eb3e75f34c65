"""The request and response values passed between the HTTP plumbing and the endpoints.

Endpoints never touch sockets: they take a :class:`Request` and return a
:class:`Response`, which keeps them testable and lets the plumbing own
keep-alive, streaming and dropped connections.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any


class Headers(Mapping[str, str]):
    """Read-only header mapping with case-insensitive lookups that keeps the sender's spelling."""

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: dict[str, tuple[str, str]] = {}
        for name, value in items:
            self._items[name.lower()] = (name, value)

    def __getitem__(self, name: str) -> str:
        return self._items[name.lower()][1]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._items

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Headers({dict(self.items())!r})"


def media_type(content_type: str | None) -> str:
    """Return the bare, lower-cased media type of a Content-Type value (no parameters)."""
    return (content_type or "").partition(";")[0].strip().lower()


@dataclass
class Request:
    """One parsed HTTP request; ``path`` excludes the query string and is not percent-decoded."""

    method: str
    path: str
    query: dict[str, str]
    headers: Headers
    body: bytes
    request_id: str

    @property
    def media_type(self) -> str:
        return media_type(self.headers.get("Content-Type"))


#: Writes one chunk of a streamed body; raises ``OSError`` once the client has gone.
Writer = Callable[[bytes], None]


@dataclass
class Response:
    """What to answer: a complete body, or ``stream`` for a body written as events happen.

    ``drop`` asks the plumbing to close the connection without writing a
    single byte (the ``drop_response`` fault).
    """

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    stream: Callable[[Writer], None] | None = None
    drop: bool = False

    @classmethod
    def json(cls, status: int, payload: Any, headers: Mapping[str, str] | None = None) -> Response:
        """Serialise ``payload`` as the body with ``Content-Type: application/json``."""
        return cls(
            status,
            json.dumps(payload, separators=(",", ":")).encode(),
            {"Content-Type": "application/json", **(headers or {})},
        )

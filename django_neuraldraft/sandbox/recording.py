"""The request log that tests assert on, in the manner of anymail's test backend."""

from __future__ import annotations

import json
import time
from collections import deque
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from django_neuraldraft.sandbox.messages import Request

#: The log is a ring: a long-running command-line sandbox must not grow without end.
LOG_LIMIT = 10_000


@dataclass
class RecordedRequest(Request):
    """One request the sandbox received; ``status`` is None while in flight or when dropped.

    ``received_at`` and ``answered_at`` are ``time.monotonic()`` readings, so a
    test can tell whether two requests were in flight at the same time.
    """

    status: int | None = None
    received_at: float = field(default_factory=time.monotonic)
    answered_at: float | None = None

    @cached_property
    def json(self) -> Any:
        """The body parsed as JSON, or ``None`` when it is not JSON."""
        try:
            return json.loads(self.body)
        except (UnicodeDecodeError, ValueError):
            return None

    def describe(self) -> str:
        outcome = "no response" if self.status is None else self.status
        return f"{self.method} {self.path} -> {outcome}"

    def to_json(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "headers": dict(self.headers),
            "body": self.body.decode("utf-8", errors="replace"),
            "json": self.json,
            "status": self.status,
            "request_id": self.request_id,
        }


class RequestLog:
    """The recorded requests, oldest first. Not locked: the store holds its lock."""

    def __init__(self) -> None:
        self._entries: deque[RecordedRequest] = deque(maxlen=LOG_LIMIT)

    def record(self, request: Request) -> RecordedRequest:
        entry = RecordedRequest(
            request.method,
            request.path,
            dict(request.query),
            request.headers,
            request.body,
            request.request_id,
        )
        self._entries.append(entry)
        return entry

    def entries(self) -> list[RecordedRequest]:
        return list(self._entries)

    def clear(self) -> None:
        self._entries.clear()


def select(
    entries: list[RecordedRequest], method: str | None, path: str | None
) -> list[RecordedRequest]:
    """The entries with this method (any case) and exact path (no query); None matches all."""
    return [
        entry
        for entry in entries
        if (method is None or entry.method == method.upper())
        and (path is None or entry.path == path)
    ]


def describe_log(entries: list[RecordedRequest]) -> str:
    """The log as lines for an assertion message."""
    return "\n".join(f"  {entry.describe()}" for entry in entries) or "  (no requests)"

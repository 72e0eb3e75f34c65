"""One API call, described as data before it is sent, so retries resend exactly the same thing."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote


def path_segment(value: str, what: str) -> str:
    """Quote ``value`` as one path segment; refuse values that would change the path.

    ``.`` and ``..`` are refused because urllib3 normalises dot segments, so
    ``get_image("..")`` would otherwise reach another endpoint.
    """
    if not isinstance(value, str) or value in ("", ".", ".."):
        raise ValueError(f"{what} must be a non-empty string other than '.' and '..'.")
    return quote(value, safe="")


@dataclass(frozen=True)
class APIRequest:
    """The method, URL and body of one call; :meth:`kwargs` feeds ``Session.request``.

    Frozen, so every retry sends the same body and the same ``Idempotency-Key``.
    Session-wide headers (auth, User-Agent) are not here: they are set once on
    the session.
    """

    method: str
    url: str
    json: Any = None
    data: Mapping[str, str] | None = None
    files: Mapping[str, tuple[str, bytes, str]] | None = None
    headers: Mapping[str, str] | None = None
    stream: bool = False

    def kwargs(self, timeout: Any) -> dict[str, Any]:
        """Return the keyword arguments for ``requests.Session.request``."""
        kwargs: dict[str, Any] = {
            "method": self.method,
            "url": self.url,
            "timeout": timeout,
        }
        if self.json is not None:
            kwargs["json"] = self.json
        if self.data is not None:
            kwargs["data"] = self.data
        if self.files is not None:
            kwargs["files"] = self.files
        if self.headers is not None:
            kwargs["headers"] = self.headers
        if self.stream:
            kwargs["stream"] = True
        return kwargs

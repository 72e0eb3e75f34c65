"""RFC 7807 problem documents, the API's one error format."""

from __future__ import annotations

import json
from collections.abc import Mapping

from django_neuraldraft.sandbox.messages import Response

ERROR_TYPE_BASE = "https://api.neuraldraft.io/errors/"

_TITLES = {
    "bad_request": "Bad request",
    "unauthorized": "Unauthorized",
    "insufficient_credits": "Insufficient credits",
    "forbidden": "Forbidden",
    "not_found": "Not found",
    "conflict": "Conflict",
    "idempotency_conflict": "Idempotency conflict",
    "validation_failed": "Validation failed",
    "rate_limited": "Rate limited",
    "internal_error": "Internal error",
    "bad_gateway": "Bad gateway",
    "service_unavailable": "Service unavailable",
    "gateway_timeout": "Gateway timeout",
}

#: The code a bare status gets (the ``status`` fault without ``code``). 405 reuses
#: ``bad_request``: the catalog files "wrong method" under it.
DEFAULT_CODES = {
    400: "bad_request",
    401: "unauthorized",
    402: "insufficient_credits",
    403: "forbidden",
    404: "not_found",
    405: "bad_request",
    409: "conflict",
    422: "validation_failed",
    429: "rate_limited",
    500: "internal_error",
    502: "bad_gateway",
    503: "service_unavailable",
    504: "gateway_timeout",
}


def default_code(status: int) -> str:
    """Return the catalog code for ``status``, falling back by class (4xx/5xx)."""
    return DEFAULT_CODES.get(status, "internal_error" if status >= 500 else "bad_request")


class ProblemError(Exception):
    """Raised by endpoints to answer with a problem document instead of their normal body."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        code: str | None = None,
        errors: Mapping[str, list[str]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code or default_code(status)
        self.detail = detail
        self.errors = dict(errors) if errors is not None else None
        self.headers = dict(headers or {})

    def to_response(self, request_id: str) -> Response:
        """Render the document; ``instance`` repeats the request id, as the docs show."""
        document = {
            "type": ERROR_TYPE_BASE + self.code,
            "title": _TITLES.get(self.code, self.code.replace("_", " ").capitalize()),
            "status": self.status,
            "code": self.code,
            "detail": self.detail,
            "instance": request_id,
        }
        if self.status == 422:
            document["errors"] = self.errors or {}
        return Response(
            self.status,
            json.dumps(document, separators=(",", ":")).encode(),
            {"Content-Type": "application/problem+json", **self.headers},
        )


def bad_request(detail: str) -> ProblemError:
    return ProblemError(400, detail)


def not_found(detail: str) -> ProblemError:
    return ProblemError(404, detail)


def validation_failed(errors: Mapping[str, list[str]]) -> ProblemError:
    """The 422 for a field map; the detail names the fields so logs are useful on their own."""
    fields = ", ".join(sorted(errors))
    return ProblemError(422, f"One or more fields failed validation: {fields}.", errors=errors)

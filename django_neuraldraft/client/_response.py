"""Reading an HTTP answer: its request id, its JSON, or the typed error it stands for."""

from __future__ import annotations

import json
from typing import Any

import requests

from ._retry import parse_retry_after
from .errors import APIError, MalformedResponseError, error_for_response

#: An error body is only read this far: enough for any problem document,
#: and a hostile server cannot make us buffer more.
_ERROR_BODY_LIMIT = 64 * 1024


def request_id(response: requests.Response) -> str | None:
    return response.headers.get("X-Request-Id")


def json_body(response: requests.Response, method: str) -> Any:
    """Return the parsed JSON of a success answer; MalformedResponseError if it is not JSON."""
    try:
        return json.loads(response.content)
    except ValueError:
        raise MalformedResponseError(
            f"Expected JSON, got {response.headers.get('Content-Type') or 'no content type'}: "
            f"{response.content[:100]!r}",
            status=response.status_code,
            request_id=request_id(response),
            method=method,
            url=response.url,
            response=response,
        ) from None


def api_error(response: requests.Response, method: str) -> APIError:
    """Build the typed error for an error answer, reading at most 64 KiB of its body."""
    raw = next(response.iter_content(_ERROR_BODY_LIMIT), b"")
    try:
        body: Any = json.loads(raw)
    except ValueError:
        body = raw.decode("utf-8", errors="replace")
    return error_for_response(
        response.status_code,
        body,
        request_id=request_id(response),
        method=method,
        url=response.url,
        retry_after=parse_retry_after(response.headers.get("Retry-After")),
        response=response,
    )

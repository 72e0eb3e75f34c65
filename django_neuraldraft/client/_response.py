"""Reading an HTTP answer: its request id, its JSON, or the typed error it stands for.

Bodies are read from a stream and only as far as a bound, so a hostile or
broken server cannot make the client buffer more than that.
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any

import requests

from ._retry import parse_retry_after
from .credentials import mask_api_key
from .errors import (
    SHORT_TEXT_LIMIT,
    APIError,
    MalformedResponseError,
    ResponseTooLargeError,
    error_for_response,
    redact,
    scrub,
    shown,
)

#: An error body is only read this far: enough for any problem document,
#: and a hostile server cannot make us buffer more.
_ERROR_BODY_LIMIT = 64 * 1024
#: The largest JSON answer read. The API's largest documented answer (a job
#: with its steps) is a few KB.
MAX_JSON_BYTES = 4 * 1024 * 1024
_CHUNK = 64 * 1024
#: Deepest nesting of arrays and objects read from an answer; the API's deepest
#: documented answer (a problem document's ``errors``) nests three levels.
MAX_JSON_DEPTH = 32
_SURROGATE = re.compile("[\ud800-\udfff]")


def request_id(response: requests.Response, secret: str | None = None) -> str | None:
    """The answer's ``X-Request-Id``, as safe to log as any text from an answer."""
    return shown(response.headers.get("X-Request-Id"), secret, SHORT_TEXT_LIMIT)


def declared_length(response: requests.Response) -> int | None:
    """Return the ``Content-Length`` an answer declares, or ``None`` if it declares none we read.

    Only ASCII digits count (``str.isdigit`` accepts ``"²"``, which ``int``
    refuses); a length of more than 18 digits is read as larger than anything.
    """
    declared = response.headers.get("Content-Length", "").strip()
    if not (declared.isascii() and declared.isdigit()):
        return None
    return int(declared) if len(declared) <= 18 else sys.maxsize


def hide_authorization(response: requests.Response, secret: str) -> None:
    """Mask the key in the sent request that ``response`` keeps, and in any header echoing it.

    Done before anything holds the response (an error keeps it as
    ``response``), so neither its request nor its headers show the key.
    """
    sent = response.request
    if sent is not None and "Authorization" in sent.headers:
        sent.headers["Authorization"] = f"Bearer {mask_api_key(secret)}"
    for name, value in response.headers.items():
        if secret in value:
            response.headers[name] = redact(value, secret)


def read_bounded(response: requests.Response, limit: int, method: str, secret: str) -> bytes:
    """Return the whole body, or raise ResponseTooLargeError once it passes ``limit`` bytes.

    A ``Content-Length`` over the limit is refused before a byte of the body
    is read; without one, reading stops one chunk past the limit.
    """
    declared = declared_length(response)
    if declared is not None and declared > limit:
        raise _too_large(response, method, f"Content-Length {declared}", limit, secret)
    body = bytearray()
    for chunk in response.iter_content(_CHUNK):
        body += chunk
        if len(body) > limit:
            raise _too_large(response, method, f"More than {limit} bytes", limit, secret)
    return bytes(body)


def _too_large(
    response: requests.Response, method: str, what: str, limit: int, secret: str
) -> ResponseTooLargeError:
    response.close()
    return ResponseTooLargeError(
        f"{what} of {response.headers.get('Content-Type') or 'body'}: the answer is refused "
        f"past {limit} bytes.",
        status=response.status_code,
        request_id=request_id(response, secret),
        method=method,
        url=response.url,
        response=response,
        secret=secret,
    )


def parse_json(content: bytes, secret: str) -> Any:
    """Parse an answer's JSON as nothing downstream can choke on, the key masked in it.

    Raises ``ValueError`` for what is not strict JSON of plain values:
    ``NaN`` and ``Infinity`` (no database column takes them), nesting deeper
    than :data:`MAX_JSON_DEPTH` (``json`` would raise ``RecursionError``,
    and every later walk of the value too). Lone surrogates, which no
    UTF-8 encoder takes, become U+FFFD.
    """
    try:
        value = json.loads(content, parse_constant=_refuse_constant)
    except RecursionError:
        raise ValueError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels") from None
    return scrub(_plain(value, 0), secret)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _plain(value: Any, depth: int) -> Any:
    if isinstance(value, str):
        return value if value.isascii() else _SURROGATE.sub("\ufffd", value)
    if not isinstance(value, (dict, list)):
        return value
    if depth >= MAX_JSON_DEPTH:
        raise ValueError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    if isinstance(value, list):
        return [_plain(item, depth + 1) for item in value]
    return {_plain(name, depth + 1): _plain(item, depth + 1) for name, item in value.items()}


def json_body(response: requests.Response, method: str, secret: str) -> Any:
    """Return the parsed JSON of a success answer; MalformedResponseError if it is not JSON."""
    content = read_bounded(response, MAX_JSON_BYTES, method, secret)
    try:
        return parse_json(content, secret)
    except ValueError as err:
        raise MalformedResponseError(
            f"Expected JSON, got {response.headers.get('Content-Type') or 'no content type'} "
            f"({err}): {redact(repr(content[:100]), secret)}",
            status=response.status_code,
            request_id=request_id(response, secret),
            method=method,
            url=response.url,
            response=response,
            secret=secret,
        ) from None


def api_error(response: requests.Response, method: str, secret: str) -> APIError:
    """Build the typed error for an error answer, reading at most 64 KiB of its body."""
    raw = next(response.iter_content(_ERROR_BODY_LIMIT), b"")
    try:
        body: Any = parse_json(raw, secret)
    except ValueError:
        body = raw.decode("utf-8", errors="replace")
    return error_for_response(
        response.status_code,
        body,
        request_id=request_id(response, secret),
        method=method,
        url=response.url,
        retry_after=parse_retry_after(response.headers.get("Retry-After")),
        response=response,
        secret=secret,
    )

"""The client's exception hierarchy, and the one mapping from an HTTP error answer to a class.

Callers branch on the class (or on ``code``), never on ``title`` or ``detail``:
the API docs say those are for humans and may change.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .credentials import API_KEY_PATTERN, KEY_LIKE_PATTERN, mask_api_key

#: Longest slice of a non-JSON error body kept as ``detail``.
_DETAIL_LIMIT = 200
#: Longest text kept from an answer, per attribute: ``message`` and ``detail``,
#: and the short ones (``code``, ``title``, ``type``, ``request_id``).
TEXT_LIMIT = 1000
SHORT_TEXT_LIMIT = 200


def printable(text: str, limit: int) -> str:
    """Return ``text`` on one line, what ``str.isprintable`` refuses written as escapes,
    cut at ``limit``.

    What a server sends ends up in log records, terminals and admin pages: an
    ANSI escape or a line break there could forge a log line, and a
    bidirectional or zero-width formatting character could hide text. Python's
    definition covers them all (every control, format, separator and
    unassigned character but the space), and is the one ``terminal.printable``
    uses too.
    """
    # Escaping never shortens a character: one past ``limit`` tells a text that is cut.
    text = "".join(map(_escaped, text[: limit + 1]))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _escaped(char: str) -> str:
    return char if char.isprintable() else char.encode("unicode_escape").decode()


def shown(text: Any, secret: str | None, limit: int) -> Any:
    """Text from an answer as an error keeps it: key masked, printable, bounded; else as is."""
    return printable(redact(text, secret), limit) if isinstance(text, str) else text


def redact(text: str, secret: str | None = None) -> str:
    """Return ``text`` with ``secret`` and anything shaped like an API key, of any length, masked.

    A well-formed key keeps its environment and last four characters
    (:func:`.credentials.mask_api_key`); a key-like token of another length is
    masked whole, so no part of a longer or shorter echo stays readable.
    """
    if secret and secret in text:
        text = text.replace(secret, mask_api_key(secret))
    return KEY_LIKE_PATTERN.sub(_mask_key_like, text)


def _mask_key_like(match: re.Match[str]) -> str:
    key = match.group(0)
    return mask_api_key(key) if API_KEY_PATTERN.fullmatch(key) else f"ndsk_{match['env']}_…"


def scrub(value: Any, secret: str | None = None) -> Any:
    """Return ``value`` (text, or JSON made of dicts and lists) with every key in it masked.

    Applied to whatever a server sent before an exception keeps it, so a
    server that echoes the ``Authorization`` header puts the key in no error,
    log record or stored field.
    """
    if isinstance(value, str):
        return redact(value, secret)
    if isinstance(value, Mapping):
        return {scrub(name, secret): scrub(item, secret) for name, item in value.items()}
    if isinstance(value, list):
        return [scrub(item, secret) for item in value]
    return value


def _without_query(url: str) -> str:
    # A signed CDN URL carries its token in the query string: keep it out of messages.
    return url.split("?", 1)[0]


def _restore(cls: type[NeuralDraftError], state: dict[str, Any]) -> NeuralDraftError:
    error = cls.__new__(cls)
    error.__dict__.update(state)
    error.args = (state.get("message"),)
    return error


class NeuralDraftError(Exception):
    """Base of every error the client raises.

    Carries what support needs (``status``, ``code``, ``request_id``) and what
    was being done (``method``, ``url``). ``str()`` and ``repr()`` never show an
    API key, and pickling drops ``response`` (its request holds the
    ``Authorization`` header), so an error can travel through a task queue.
    """

    #: HTTP status, when a response arrived.
    status: int | None
    #: The API's stable machine code, e.g. ``"not_found"``; branch on this.
    code: str | None
    #: Human explanation of this occurrence; may change between API versions.
    detail: str | None
    #: ``X-Request-Id`` of the response (``req_…``), to quote to support.
    request_id: str | None
    method: str | None
    url: str | None
    #: The ``requests.Response``, when there was one; not kept when pickled.
    response: Any

    def __init__(
        self,
        message: str | None = None,
        *,
        status: int | None = None,
        code: str | None = None,
        detail: str | None = None,
        request_id: str | None = None,
        method: str | None = None,
        url: str | None = None,
        response: Any = None,
        secret: str | None = None,
    ) -> None:
        message = shown(message, secret, TEXT_LIMIT)
        detail = shown(detail, secret, TEXT_LIMIT)
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = shown(code, secret, SHORT_TEXT_LIMIT)
        self.detail = detail
        self.request_id = shown(request_id, secret, SHORT_TEXT_LIMIT)
        self.method = method
        self.url = scrub(url, secret)
        self.response = response

    def describe(self) -> str:
        """Return the cause in one line, before redaction; subclasses add their specifics."""
        head = " ".join(str(part) for part in (self.status, self.code) if part is not None)
        text = self.message or self.detail or ""
        return f"{head}: {text}" if head and text else head or text or type(self).__name__

    def __str__(self) -> str:
        context = []
        if self.method or self.url:
            target = " ".join(filter(None, (self.method, self.url and _without_query(self.url))))
            context.append(target)
        if self.request_id:
            context.append(f"request {self.request_id}")
        suffix = f" ({', '.join(context)})" if context else ""
        return printable(redact(self.describe() + suffix), 2 * TEXT_LIMIT)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        state = {name: value for name, value in self.__dict__.items() if name != "response"}
        state["response"] = None
        return (_restore, (type(self), state))


class APIError(NeuralDraftError):
    """The API answered with an error status; built from its RFC 7807 problem document.

    A body that is not a problem document (a proxy's HTML page, say) still gives
    an ``APIError``, with its first characters as ``detail``.
    """

    #: The parsed problem document, or ``None`` when the body was not a JSON object.
    problem: Mapping[str, Any] | None
    title: str | None
    #: The problem ``type`` URI.
    type: str | None

    def __init__(
        self,
        message: str | None = None,
        *,
        problem: Mapping[str, Any] | None = None,
        title: str | None = None,
        type: str | None = None,
        **context: Any,
    ) -> None:
        super().__init__(message, **context)
        secret = context.get("secret")
        self.problem = scrub(problem, secret)
        self.title = shown(title, secret, SHORT_TEXT_LIMIT)
        self.type = shown(type, secret, SHORT_TEXT_LIMIT)


class BadRequestError(APIError):
    """400: the request itself is malformed; fix it, do not retry."""


class AuthenticationError(APIError):
    """401: the key is missing, malformed, expired or revoked."""


class InsufficientCreditsError(APIError):
    """402 ``insufficient_credits`` or ``out_of_credits`` (the docs use both spellings)."""


class PlanRequiredError(APIError):
    """402 ``plan_required``: the feature needs a higher plan."""


class PermissionDeniedError(APIError):
    """403: the key is valid but lacks the scope."""


class NotFoundError(APIError, LookupError):
    """404: no such resource, or the key cannot see it."""


class ConflictError(APIError):
    """409: the resource's state forbids the request (e.g. cancelling a finished job)."""


class IdempotencyConflictError(ConflictError):
    """409 ``idempotency_conflict``: the Idempotency-Key was used with different parameters."""


class ValidationFailedError(APIError, ValueError):
    """422: fields failed validation; ``errors`` maps each field to its messages."""

    def __init__(
        self,
        message: str | None = None,
        *,
        errors: Mapping[str, list[str]] | None = None,
        **context: Any,
    ) -> None:
        super().__init__(message, **context)
        #: ``{field: [message, ...]}``, empty when the API named no field.
        self.errors: dict[str, list[str]] = scrub(dict(errors or {}), context.get("secret"))

    def describe(self) -> str:
        fields = "; ".join(
            f"{name}: {' '.join(map(str, messages))}" for name, messages in self.errors.items()
        )
        return f"{super().describe()} [{fields}]" if fields else super().describe()


class RateLimitedError(APIError):
    """429: the project's rate limit is spent; ``retry_after`` is the server's wait, in seconds."""

    def __init__(
        self, message: str | None = None, *, retry_after: float | None = None, **context: Any
    ) -> None:
        super().__init__(message, **context)
        self.retry_after = retry_after


class ServerError(APIError):
    """5xx: the API failed; retried with backoff before it reaches the caller."""


class TransportError(NeuralDraftError):
    """No usable HTTP answer: timeout, refused or dropped connection.

    Always raised ``from`` the underlying ``requests`` exception.
    """


class MalformedResponseError(NeuralDraftError):
    """A success answer that is not JSON, or JSON of the wrong shape."""


class ResponseTooLargeError(MalformedResponseError):
    """A JSON answer longer than the client reads (a few MB); refused before it is read whole."""


class DownloadError(NeuralDraftError):
    """An image download failed for a reason other than transport or an API error status."""


class DownloadTooLargeError(DownloadError):
    """The body is bigger than the caller's ``max_bytes``; nothing past the cap was written."""


class DownloadRefusedError(DownloadError):
    """A URL was not fetched: ambiguous text, or the caller's policy refused it (any hop)."""


_BY_CODE: Mapping[str, type[APIError]] = {
    "bad_request": BadRequestError,
    "unauthorized": AuthenticationError,
    "insufficient_credits": InsufficientCreditsError,
    "out_of_credits": InsufficientCreditsError,
    "plan_required": PlanRequiredError,
    "forbidden": PermissionDeniedError,
    "not_found": NotFoundError,
    "conflict": ConflictError,
    "idempotency_conflict": IdempotencyConflictError,
    "validation_failed": ValidationFailedError,
    "rate_limited": RateLimitedError,
    "internal_error": ServerError,
    "bad_gateway": ServerError,
    "service_unavailable": ServerError,
}

_BY_STATUS: Mapping[int, type[APIError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    402: InsufficientCreditsError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: ValidationFailedError,
    429: RateLimitedError,
}


def error_class(status: int, code: str | None) -> type[APIError]:
    """Return the class for an error answer: a known ``code`` wins over the status."""
    if code is not None and code in _BY_CODE:
        return _BY_CODE[code]
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    return ServerError if status >= 500 else APIError


def _optional_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def error_for_response(
    status: int,
    body: Any = None,
    *,
    request_id: str | None = None,
    method: str | None = None,
    url: str | None = None,
    retry_after: float | None = None,
    response: Any = None,
    secret: str | None = None,
) -> APIError:
    """Build the typed error for an HTTP error answer.

    ``body`` is the parsed JSON (a problem document when the API is well
    behaved) or the raw text of anything else; ``secret`` (the API key) and
    anything shaped like a key is masked wherever the body repeats it.
    ``request_id`` falls back to the problem's ``instance``. Never raises on a
    strange body: the status alone is enough to pick a class.
    """
    problem = body if isinstance(body, Mapping) else None
    if problem is None:
        code = title = kind = None
        text = body.strip() if isinstance(body, str) else ""
        detail = text[:_DETAIL_LIMIT] or None
    else:
        code = _optional_str(problem.get("code"))
        detail = _optional_str(problem.get("detail"))
        title = _optional_str(problem.get("title"))
        kind = _optional_str(problem.get("type"))
        request_id = request_id or _optional_str(problem.get("instance"))
    cls = error_class(status, code)
    extra: dict[str, Any] = {}
    if issubclass(cls, ValidationFailedError):
        errors = problem.get("errors") if problem else None
        extra["errors"] = errors if isinstance(errors, Mapping) else None
    elif issubclass(cls, RateLimitedError):
        extra["retry_after"] = retry_after
    return cls(
        detail or title,
        problem=problem,
        title=title,
        type=kind,
        status=status,
        code=code,
        detail=detail,
        request_id=request_id,
        method=method,
        url=url,
        response=response,
        secret=secret,
        **extra,
    )

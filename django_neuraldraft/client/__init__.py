"""The Django-free client of the Neural Draft v1 API: :class:`NeuralDraftClient` and its types."""

from __future__ import annotations

import logging
import mimetypes
import os
import threading
import time
import uuid
from collections.abc import Callable, Generator, Iterator, Mapping
from typing import Any, BinaryIO
from urllib.parse import urlsplit

import requests
import urllib3

from .. import __version__
from ._download import Policy, download as _download
from ._pinning import NoRedirectSession
from ._request import APIRequest, path_segment
from ._response import api_error, hide_authorization, json_body, request_id
from ._retry import RetryPolicy
from .credentials import mask_api_key
from .errors import (
    APIError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    DownloadError,
    DownloadRefusedError,
    DownloadTooLargeError,
    IdempotencyConflictError,
    InsufficientCreditsError,
    MalformedResponseError,
    NeuralDraftError,
    NotFoundError,
    PermissionDeniedError,
    PlanRequiredError,
    RateLimitedError,
    ResponseTooLargeError,
    ServerError,
    TransportError,
    ValidationFailedError,
    error_for_response,
)
from .sse import iter_events
from .types import (
    ASPECT_RATIOS,
    JOB_STATUSES,
    JOB_TYPES,
    TERMINAL_STATUSES,
    DownloadInfo,
    Image,
    Job,
    JobError,
    JobEvent,
    JobStep,
    unwrap,
)
from .urls import HTTPURL, UnsafeURLError, parse_http_url

__all__ = [
    "ASPECT_RATIOS",
    "DEFAULT_BASE_URL",
    "DOWNLOAD_SECONDS",
    "HTTPURL",
    "JOB_STATUSES",
    "JOB_TYPES",
    "TERMINAL_STATUSES",
    "APIError",
    "AuthenticationError",
    "BadRequestError",
    "ConflictError",
    "DownloadError",
    "DownloadInfo",
    "DownloadRefusedError",
    "DownloadTooLargeError",
    "IdempotencyConflictError",
    "Image",
    "InsufficientCreditsError",
    "Job",
    "JobError",
    "JobEvent",
    "JobStep",
    "MalformedResponseError",
    "NeuralDraftClient",
    "NeuralDraftError",
    "NotFoundError",
    "PermissionDeniedError",
    "PlanRequiredError",
    "RateLimitedError",
    "ResponseTooLargeError",
    "ServerError",
    "TransportError",
    "UnsafeURLError",
    "ValidationFailedError",
    "error_for_response",
    "parse_http_url",
]

logger = logging.getLogger("django_neuraldraft.client")

DEFAULT_BASE_URL = "https://api.neuraldraft.io/v1"
#: Longest a download may take, all redirects included, unless the caller says otherwise.
DOWNLOAD_SECONDS = 300.0

#: Failures that may pass if the same request is sent again.
_TRANSIENT = (requests.ConnectionError, requests.Timeout)
#: What reading a stream's body can raise once the status line is in.
_STREAM_BROKEN = (requests.RequestException, urllib3.exceptions.HTTPError)
_STREAM_CHUNK = 8 * 1024


class NeuralDraftClient:
    """One project's connection to the Neural Draft API.

    Each endpoint method returns a typed object from :mod:`.types` or raises a
    :class:`NeuralDraftError` (``ValueError`` for an id or key that cannot be
    put in a URL, before any request). API calls are retried
    per :class:`._retry.RetryPolicy`: 429 after ``Retry-After`` (at most
    ``max_retry_after`` seconds, else raised at once); 5xx, timeouts and
    connection errors after full-jitter exponential backoff; ``max_retries``
    retries after the first try. Other 4xx answers raise at once, and so does
    a redirect: the key is never sent on to wherever an answer points.

    A ``requests.Session`` is opened lazily per thread and kept for reuse until
    :meth:`close`; the client can be pickled (sessions are not) and used from
    several threads. ``timeout`` is ``(connect, read)`` seconds or one number
    for both, applied to every request. The key is never logged or shown
    unmasked, including in ``repr()`` and error messages.
    """

    #: Waits between retries; tests set it on an instance to record the waits instead.
    _sleep: Callable[[float], Any] = staticmethod(time.sleep)

    def __init__(
        self,
        api_key: str,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float | tuple[float, float] = (5, 30),
        max_retries: int = 3,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        max_retry_after: float = 120.0,
        user_agent_suffix: str | None = None,
    ) -> None:
        usable = isinstance(api_key, str) and api_key.isprintable() and " " not in api_key
        if not (usable and api_key):
            raise ValueError(
                "api_key must be a non-empty string without spaces or control characters, "
                f"not {mask_api_key(api_key)}."
            )
        try:
            api_url = parse_http_url(base_url.rstrip("/"))
        except UnsafeURLError as err:
            raise ValueError(f"base_url must be a plain http(s) URL: {err}") from None
        if max_retries < 0:
            raise ValueError("max_retries must be 0 or more.")
        self._api_key = api_key
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.retry_policy = RetryPolicy(max_retries, backoff_base, backoff_cap, max_retry_after)
        agent = [f"django-neuraldraft/{__version__}", requests.utils.default_user_agent()]
        if user_agent_suffix:
            agent.append(user_agent_suffix)
        self.user_agent = " ".join(agent)
        #: The one origin (scheme, host, port) the key is ever sent to.
        self.api_origin = api_url.origin
        self._init_sessions()

    def _init_sessions(self) -> None:
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<NeuralDraftClient {self.base_url} key={mask_api_key(self._api_key)}>"

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for name in ("_local", "_sessions", "_lock"):
            del state[name]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._init_sessions()

    def __enter__(self) -> NeuralDraftClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close every thread's session; the next call opens a fresh one."""
        with self._lock:
            sessions, self._sessions = self._sessions, []
            self._local = threading.local()
        for session in sessions:
            session.close()

    def _session(self) -> requests.Session:
        """Return this thread's session for API calls, opening it on first use.

        The key is not among its headers: :meth:`_send` adds it to each API
        call, so nothing else sent through a session can carry it.
        """
        try:
            return self._local.session
        except AttributeError:
            pass
        session = NoRedirectSession()
        session.headers["User-Agent"] = self.user_agent
        session.headers["Accept"] = "application/json, application/problem+json"
        with self._lock:
            self._sessions.append(session)
            self._local.session = session
        return session

    # Endpoints.

    def create_image(
        self,
        prompt: str,
        *,
        style: str | None = None,
        aspect_ratio: str | None = None,
        key: str | None = None,
        idempotency_key: str | None = None,
    ) -> Job:
        """Start an image generation job (``POST /images``, JSON); returns it, ``pending``.

        Always sends ``Idempotency-Key`` (a fresh uuid4 hex unless given), the
        same on every retry, so a retry after a lost answer never starts and
        bills a second job. Pass a key derived from your own record to make
        resubmits after a crash idempotent too. Fields left ``None`` are not
        sent, so the API's defaults apply. Invalid fields raise
        ValidationFailedError (422) from the API, reusing a key with other
        fields IdempotencyConflictError (409).
        """
        body: dict[str, Any] = {"prompt": prompt}
        for name, value in (("style", style), ("aspect_ratio", aspect_ratio), ("key", key)):
            if value is not None:
                body[name] = value
        headers = {"Idempotency-Key": idempotency_key or uuid.uuid4().hex}
        request = APIRequest("POST", f"{self.base_url}/images", json=body, headers=headers)
        return self._call(request, Job.from_api)

    def get_job(self, job_id: str) -> Job:
        """Return the job's current state (``GET /jobs/{id}``); NotFoundError if unknown."""
        url = f"{self.base_url}/jobs/{path_segment(job_id, 'job_id')}"
        return self._call(APIRequest("GET", url), Job.from_api)

    def cancel_job(self, job_id: str) -> Job:
        """Cancel the job (``POST /jobs/{id}/cancel``) and return it, ``cancelled``.

        A job that is already cancelled is returned rather than raising the
        API's 409, so a retry whose first answer was lost (the cancel did go
        through) still succeeds; that case costs one extra ``GET``. A job that
        already completed or failed raises ConflictError.
        """
        url = f"{self.base_url}/jobs/{path_segment(job_id, 'job_id')}/cancel"
        try:
            return self._call(APIRequest("POST", url), Job.from_api)
        except ConflictError:
            job = self.get_job(job_id)
            if job.status != "cancelled":
                raise
            return job

    def get_image(self, key: str) -> Image:
        """Return the image stored under ``key`` (``GET /images/{key}``); NotFoundError if none."""
        url = f"{self.base_url}/images/{path_segment(key, 'key')}"
        return self._call(APIRequest("GET", url), Image.from_api)

    def upload_image(
        self,
        key: str,
        fileobj: BinaryIO,
        *,
        filename: str | None = None,
        content_type: str | None = None,
    ) -> Image:
        """Register ``fileobj``'s bytes under ``key`` (``POST /images``, multipart).

        ``fileobj`` is read whole, from its current position, before the first
        try: requests buffers a multipart body anyway, and a retry must resend
        the same bytes. ``filename`` defaults to the file's name (else the key),
        ``content_type`` to a guess from it. Rejected bytes raise
        ValidationFailedError with ``errors["file"]``.
        """
        content = fileobj.read()
        if not isinstance(content, bytes):
            raise TypeError("upload_image needs a file opened in binary mode.")
        name = getattr(fileobj, "name", None)
        filename = filename or (os.path.basename(name) if isinstance(name, str) else "") or key
        content_type = (
            content_type or mimetypes.guess_type(filename)[0] or "application/octet-stream"
        )
        request = APIRequest(
            "POST",
            f"{self.base_url}/images",
            data={"key": key},
            files={"file": (filename, content, content_type)},
        )
        return self._call(request, Image.from_api)

    def create_webhook_endpoint(
        self, url: str, *, events: tuple[str, ...] = ("image.generated",)
    ) -> Mapping[str, Any]:
        """Register ``url`` to receive ``events`` (``POST /webhook-endpoints``).

        Returns the endpoint object, whose ``signing_secret`` (``whsec_...``)
        the API shows this once and never again. A bad URL or topic raises
        ValidationFailedError.
        """

        def parse(payload: Any) -> Mapping[str, Any]:
            endpoint = unwrap(payload, "webhook endpoint", "id")
            for name in ("id", "signing_secret"):
                if not isinstance(endpoint.get(name), str) or not endpoint[name]:
                    raise MalformedResponseError(f"The webhook endpoint has no {name!r} string.")
            return endpoint

        body = {"url": url, "events": list(events)}
        request = APIRequest("POST", f"{self.base_url}/webhook-endpoints", json=body)
        return self._call(request, parse)

    def stream_job(
        self, job_id: str, *, last_event_id: str | None = None
    ) -> Generator[JobEvent, None, None]:
        """Yield the job's server-sent events until ``done`` or ``error``.

        The connection is opened on the first ``next()``. If it drops (or ends
        without a final event) the stream is reopened with ``Last-Event-ID``, so
        no event is seen twice; that counts as a retry, and the count restarts
        with every event received. Closing the iterator closes the connection.
        Pass ``last_event_id`` to resume a stream read earlier.
        """
        url = f"{self.base_url}/jobs/{path_segment(job_id, 'job_id')}/stream"
        return self._stream(url, last_event_id)

    def download(
        self,
        url: str,
        dest_fileobj: BinaryIO,
        *,
        max_bytes: int,
        policy: Policy | None = None,
        max_seconds: float = DOWNLOAD_SECONDS,
    ) -> DownloadInfo:
        """Stream ``url`` into ``dest_fileobj``, never holding the whole body in memory.

        Every hop's URL is parsed once (:func:`.urls.parse_http_url`; text
        with more than one reading is refused as DownloadRefusedError), then
        ``policy(url)`` returns the addresses it may be fetched from, or raises
        to refuse it (as DownloadRefusedError). The connection goes to the first
        address it returned, with the URL's host name kept for ``Host``, SNI
        and the certificate check, so no later DNS answer can move it. Without
        a policy, the host is resolved once and not judged.

        Follows at most 5 redirects itself, each target through the same
        steps; an https URL never redirects to http. The ``Authorization``
        header goes only to the API's exact origin, and never again once a
        hop has left it. Raises DownloadTooLargeError before writing anything
        when ``Content-Length`` exceeds ``max_bytes``, and as soon as more
        than ``max_bytes`` arrive. Not retried: ``dest_fileobj`` may hold a
        partial body, so retrying is the caller's decision. Error statuses
        raise the matching APIError. The whole download, redirects included,
        ends within ``max_seconds``, however slowly the server sends: past
        that, its connection is cut and DownloadError raised.
        """
        return _download(
            url,
            dest_fileobj,
            max_bytes=max_bytes,
            max_seconds=max_seconds,
            policy=policy,
            timeout=self.timeout,
            api_origin=self.api_origin,
            headers={"User-Agent": self.user_agent, "Accept": "*/*"},
            authorization=f"Bearer {self._api_key}",
            secret=self._api_key,
        )

    # Sending.

    def _call(self, request: APIRequest, parse: Callable[[Any], Any]) -> Any:
        response = self._send(request)
        try:
            with response:
                return parse(json_body(response, request.method, self._api_key))
        except MalformedResponseError as err:
            err.status = response.status_code
            err.request_id = request_id(response, self._api_key)
            err.method = request.method
            err.url = request.url
            err.response = response
            raise

    def _send(self, request: APIRequest) -> requests.Response:
        """Send ``request`` with retries; return the first 2xx answer, unread, else raise.

        The body is streamed so that its reader decides how much of it to take.
        """
        session = self._session()
        kwargs = request.kwargs(self.timeout)
        kwargs["headers"] = {**(request.headers or {}), "Authorization": f"Bearer {self._api_key}"}
        kwargs.update(stream=True, allow_redirects=False)
        attempt = 0
        while True:
            try:
                response = session.request(**kwargs)
            except _TRANSIENT as err:
                error: NeuralDraftError = self._transport_error(request, err)
                delay = self.retry_policy.delay(error, attempt)
                if delay is None:
                    raise error from err
            else:
                hide_authorization(response, self._api_key)
                if logger.isEnabledFor(logging.DEBUG):
                    self._log_response(request, response, self._api_key)
                if response.status_code < 300:
                    return response
                if response.status_code < 400:
                    response.close()
                    raise self._redirected(request, response)
                error = api_error(response, request.method, self._api_key)
                response.close()
                delay = self.retry_policy.delay(error, attempt)
                if delay is None:
                    raise error
            logger.info("Retrying %s in %.2f s after %s.", request.method, delay, error)
            self._sleep(delay)
            attempt += 1

    def _redirected(self, request: APIRequest, response: requests.Response) -> APIError:
        location = response.headers.get("Location") or "nowhere"
        return APIError(
            f"The API answered {response.status_code} with a redirect to {location}; "
            "API calls never follow redirects (the key would go with them): point "
            "base_url at the final address.",
            status=response.status_code,
            request_id=request_id(response, self._api_key),
            method=request.method,
            url=request.url,
            secret=self._api_key,
        )

    def _transport_error(self, request: APIRequest, err: Exception) -> TransportError:
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "%s %s -> %s", request.method, urlsplit(request.url).path, type(err).__name__
            )
        return TransportError(
            f"{type(err).__name__}: {err}",
            method=request.method,
            url=request.url,
            secret=self._api_key,
        )

    @staticmethod
    def _log_response(request: APIRequest, response: requests.Response, secret: str) -> None:
        logger.debug(
            "%s %s -> %s (%s) in %.1f ms",
            request.method,
            urlsplit(request.url).path,
            response.status_code,
            request_id(response, secret),
            response.elapsed.total_seconds() * 1000,
        )

    def _stream(self, url: str, last_event_id: str | None) -> Generator[JobEvent, None, None]:
        attempt = 0
        while True:
            headers = {"Accept": "text/event-stream", "Accept-Encoding": "identity"}
            if last_event_id:
                headers["Last-Event-ID"] = last_event_id
            response = self._send(APIRequest("GET", url, headers=headers, stream=True))
            try:
                for event in _events(response, self._api_key):
                    attempt = 0
                    last_event_id = event.id or last_event_id
                    yield event
                    if event.is_terminal:
                        return
                cause: Exception | None = None
            except _STREAM_BROKEN as err:
                cause = err
            finally:
                response.close()
            error = TransportError(
                f"Stream ended before a done or error event: {cause or 'connection closed'}",
                method="GET",
                url=url,
                request_id=request_id(response, self._api_key),
            )
            delay = self.retry_policy.delay(error, attempt)
            if delay is None:
                raise error from cause
            logger.info("Reopening %s in %.2f s after %s.", url, delay, error)
            self._sleep(delay)
            attempt += 1


def _events(response: requests.Response, secret: str) -> Iterator[JobEvent]:
    """Return the events of a streamed body, each as soon as its bytes arrive.

    ``iter_content(None)`` would wait for the end of a body that is not
    chunk-encoded, which an event stream may not be; ``read1`` returns what is
    there. urllib3 before 2.3 has no ``read1``: there, one byte at a time.
    """
    read1 = getattr(response.raw, "read1", None)
    if read1 is None:
        chunks: Iterator[bytes] = response.iter_content(chunk_size=1)
    else:
        chunks = iter(lambda: read1(_STREAM_CHUNK), b"")
    return iter_events(chunks, secret)

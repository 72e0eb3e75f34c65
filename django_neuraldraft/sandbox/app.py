"""The request pipeline: log, faults, auth, rate limit, then the endpoint; socket-free."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

from django_neuraldraft.sandbox import api, cdn, control, hostile
from django_neuraldraft.sandbox.auth import authentication_failure
from django_neuraldraft.sandbox.faults import REQUEST_KINDS, Fault
from django_neuraldraft.sandbox.media import CDN_PREFIX, PROJECT_ID
from django_neuraldraft.sandbox.messages import Request, Response
from django_neuraldraft.sandbox.problems import ProblemError, not_found
from django_neuraldraft.sandbox.store import Store

logger = logging.getLogger("django_neuraldraft.sandbox")

API_PREFIX = "/v1/"
CONTROL_PREFIX = "/_sandbox/"


def _rate_limited(retry_after: int, headers: dict[str, str]) -> ProblemError:
    return ProblemError(
        429,
        f"Rate limit exceeded for project {PROJECT_ID}. Retry after {retry_after} seconds.",
        headers={**headers, "Retry-After": str(retry_after)},
    )


def _spoil(response: Response, faults: list[Fault]) -> None:
    """Apply the ``answer_fields`` and ``answer_body`` faults to a success answer."""
    if not 200 <= response.status < 300 or response.stream is not None:
        return
    for fault in faults:
        if fault.kind == "answer_fields":
            payload = json.loads(response.body)
            if isinstance(payload, dict):
                payload.update(fault.params["fields"])
                response.body = json.dumps(payload, separators=(",", ":")).encode()
        elif fault.kind == "answer_body":
            response.body = fault.params["body"].encode()


def _injected_status(params: dict[str, Any]) -> ProblemError:
    status = params["status"]
    headers = {"Retry-After": "1"} if status == 429 else {}
    if params["request_id"] is not None:
        # Sent as UTF-8 bytes, as a broken proxy would; the header writer speaks latin-1.
        headers["X-Request-Id"] = params["request_id"].encode("utf-8").decode("latin-1")
    return ProblemError(
        status,
        params["detail"] if params["detail"] is not None else f"Injected fault: status {status}.",
        code=params["code"],
        headers=headers,
    )


class App:
    """Turns a :class:`Request` into a :class:`Response`; the HTTP server only moves bytes."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def handle(self, request: Request) -> Response:
        if request.path.startswith(CONTROL_PREFIX):
            return self._answer(request, lambda: control.handle(self.store, request))
        entry, faults = self.store.begin(request, REQUEST_KINDS)
        delay = sum(fault.params["seconds"] for fault in faults if fault.kind == "latency")
        if delay:
            time.sleep(delay)
        response = self._answer(request, lambda: self._route(request, faults))
        _spoil(response, faults)
        if request.path.startswith(API_PREFIX) and "X-RateLimit-Limit" not in response.headers:
            response.headers.update(self.store.rate_headers())
        response.drop = any(fault.kind == "drop_response" for fault in faults)
        entry.status = None if response.drop else response.status
        entry.answered_at = time.monotonic()
        return response

    def _answer(self, request: Request, handler: Callable[[], Response]) -> Response:
        try:
            return handler()
        except ProblemError as problem:
            return problem.to_response(request.request_id)
        except Exception:
            logger.exception("Sandbox error on %s %s", request.method, request.path)
            failure = ProblemError(
                500, "The sandbox failed on this request; its log has the traceback."
            )
            return failure.to_response(request.request_id)

    def _route(self, request: Request, faults: list[Fault]) -> Response:
        for fault in faults:
            if fault.kind == "status":
                raise _injected_status(fault.params)
            if fault.kind == "rate_limit":
                raise _rate_limited(fault.params["retry_after"], {})
            if fault.kind == "echo_authorization":
                return hostile.echo_authorization(fault, request)
            if fault.kind == "huge_body":
                return hostile.huge_body(fault)
            if fault.kind == "gzip_bomb":
                return hostile.gzip_bomb(fault)
        if request.path.startswith(API_PREFIX):
            return self._api(request)
        if request.path.startswith(CDN_PREFIX):
            return cdn.serve(self.store, request)
        raise not_found(f"Nothing at {request.path}; the API lives under /v1/.")

    def _api(self, request: Request) -> Response:
        failure = authentication_failure(request.headers.get("Authorization"))
        if failure is not None:
            raise ProblemError(401, failure)
        allowed, headers, retry_after = self.store.admit()
        if not allowed:
            raise _rate_limited(retry_after, headers)
        try:
            response = api.dispatch(self.store, request)
        except ProblemError as problem:
            response = problem.to_response(request.request_id)
        response.headers.update(headers)
        return response

"""The ``/v1`` endpoints, after authentication and rate limiting have let a request through."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import unquote

from django_neuraldraft.sandbox import sse, validation
from django_neuraldraft.sandbox.idempotency import KEY_MAX_LENGTH, fingerprint
from django_neuraldraft.sandbox.images import inspect_upload
from django_neuraldraft.sandbox.messages import Request, Response
from django_neuraldraft.sandbox.multipart import parse_form
from django_neuraldraft.sandbox.problems import (
    ProblemError,
    bad_request,
    not_found,
    validation_failed,
)
from django_neuraldraft.sandbox.store import Store

#: Upload size limit from the docs (§3.2).
MAX_UPLOAD_BYTES = 10 * 1024 * 1024

Handler = Callable[..., Response]


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler


def _idempotent(store: Store, request: Request, handle: Callable[[], Response]) -> Response:
    """Run ``handle`` at most once per ``Idempotency-Key`` and replay its answer afterwards.

    Problem answers below 500 are kept and replayed too, as Stripe does: the
    same request gets the same answer. A crash or a 5xx frees the key so a
    retry runs again.
    """
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return handle()
    if not 1 <= len(key) <= KEY_MAX_LENGTH:
        raise bad_request(f"The Idempotency-Key header must be 1 to {KEY_MAX_LENGTH} characters.")
    record = store.claim(key, fingerprint(request))
    if record.response is not None:
        replay = record.response
        return Response(
            replay.status, replay.body, {**replay.headers, "Idempotent-Replayed": "true"}
        )
    try:
        try:
            response = handle()
        except ProblemError as problem:
            response = problem.to_response(request.request_id)
    except BaseException:
        store.abandon(key, record)
        raise
    store.fulfil(key, record, response)
    return response


def _generate(store: Store, request: Request, generation: validation.Generation) -> Response:
    return Response.json(202, store.create_job(generation, request).initial_json())


def _upload(store: Store, request: Request, path_key: str | None) -> Response:
    """Register uploaded bytes: 201 on ``POST /images``, 200 on ``PUT /images/{key}``."""
    parts = parse_form(request.body, request.headers.get("Content-Type", ""))
    errors: dict[str, list[str]] = {}
    key = path_key
    if key is None:
        key_part = parts.get("key")
        if key_part is None:
            errors["key"] = ["The key field is required."]
        else:
            key = key_part.text()
            if problems := validation.key_errors(key):
                errors["key"] = problems
    file = parts.get("file")
    info = None
    if file is None:
        errors["file"] = ["The file field is required."]
    elif len(file.data) > MAX_UPLOAD_BYTES:
        errors["file"] = ["The file must not be larger than 10 MB."]
    else:
        try:
            info = inspect_upload(file.data)
        except ValueError as err:
            errors["file"] = [str(err)]
    if errors:
        raise validation_failed(errors)
    assert key is not None and file is not None and info is not None  # no errors: all were read
    image = store.upload(key, file.data, info)
    return Response.json(201 if path_key is None else 200, {"data": image.to_json(len(file.data))})


def create_image(store: Store, request: Request) -> Response:
    if request.media_type == "multipart/form-data":
        return _upload(store, request, None)
    if request.media_type == "application/json":
        return _idempotent(
            store,
            request,
            lambda: _generate(
                store, request, validation.generation(validation.json_object(request))
            ),
        )
    raise bad_request(
        "POST /images takes application/json (generate) or multipart/form-data (upload)."
    )


def get_image(store: Store, request: Request, key: str) -> Response:
    image = store.image(key)
    return Response.json(200, image.to_json(len(store.blob_bytes(image.blob))))


def replace_image(store: Store, request: Request, key: str) -> Response:
    if problems := validation.key_errors(key):
        raise validation_failed({"key": problems})
    if request.media_type == "multipart/form-data":
        return _upload(store, request, key)
    if request.media_type == "application/json":
        return _idempotent(
            store,
            request,
            lambda: _generate(
                store, request, validation.regeneration(validation.json_object(request), key)
            ),
        )
    raise bad_request(
        "PUT /images/{key} takes multipart/form-data (upload) or application/json (regenerate)."
    )


def get_job(store: Store, request: Request, job_id: str) -> Response:
    return Response.json(200, store.job_json(job_id))


def stream_job(store: Store, request: Request, job_id: str) -> Response:
    store.job_json(job_id)
    after = sse.last_event_id(request.headers.get("Last-Event-ID"))
    return Response(
        200,
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"},
        stream=sse.job_stream(store, job_id, after, store.options.sse_heartbeat),
    )


def cancel_job(store: Store, request: Request, job_id: str) -> Response:
    return Response.json(200, store.cancel_job(job_id))


def create_endpoint(store: Store, request: Request) -> Response:
    fields = validation.endpoint_fields(validation.json_object(request), partial=False)
    return Response.json(201, store.create_endpoint(fields))


def update_endpoint(store: Store, request: Request, endpoint_id: str) -> Response:
    fields = validation.endpoint_fields(validation.json_object(request), partial=True)
    return Response.json(200, store.update_endpoint(endpoint_id, fields))


def list_deliveries(store: Store, request: Request) -> Response:
    return Response.json(200, store.list_deliveries(validation.delivery_query(request.query)))


def retry_delivery(store: Store, request: Request, delivery_id: str) -> Response:
    return Response.json(202, store.retry_delivery(delivery_id))


def project(store: Store, request: Request) -> Response:
    return Response.json(200, store.project())


def _route(method: str, pattern: str, handler: Handler) -> Route:
    return Route(method, re.compile("/v1" + pattern.replace("{id}", "([^/]+)")), handler)


ROUTES = (
    _route("POST", "/images", create_image),
    _route("GET", "/images/{id}", get_image),
    _route("PUT", "/images/{id}", replace_image),
    _route("GET", "/jobs/{id}", get_job),
    _route("GET", "/jobs/{id}/stream", stream_job),
    _route("POST", "/jobs/{id}/cancel", cancel_job),
    _route("POST", "/webhook-endpoints", create_endpoint),
    _route("PATCH", "/webhook-endpoints/{id}", update_endpoint),
    _route("GET", "/webhook-deliveries", list_deliveries),
    _route("POST", "/webhook-deliveries/{id}/retry", retry_delivery),
    _route("GET", "/projects/me", project),
)


def dispatch(store: Store, request: Request) -> Response:
    """Find the endpoint for the request's method and path; 405 lists the methods the path has."""
    allowed = []
    for route in ROUTES:
        match = route.pattern.fullmatch(request.path)
        if match is None:
            continue
        if route.method == request.method:
            return route.handler(store, request, *(unquote(group) for group in match.groups()))
        allowed.append(route.method)
    if allowed:
        raise ProblemError(
            405,
            f"{request.method} is not allowed on {request.path}; use {', '.join(allowed)}.",
            headers={"Allow": ", ".join(allowed)},
        )
    raise not_found(f"No endpoint at {request.path}.")

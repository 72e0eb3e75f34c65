"""The ``/_sandbox/`` control endpoints: faults, the request log, reset. No auth, not logged."""

from __future__ import annotations

import re

from django_neuraldraft.sandbox.faults import FaultError, make_fault
from django_neuraldraft.sandbox.messages import Request, Response
from django_neuraldraft.sandbox.problems import ProblemError, not_found, validation_failed
from django_neuraldraft.sandbox.store import Store
from django_neuraldraft.sandbox.validation import json_object

_FINISH = re.compile(r"/_sandbox/jobs/([^/]+)/finish")


def handle(store: Store, request: Request) -> Response:
    """Route one control request; these never count against the rate limit."""
    route = (request.method, request.path)
    if route == ("POST", "/_sandbox/faults"):
        return _add_fault(store, request)
    if route == ("DELETE", "/_sandbox/faults"):
        store.clear_faults()
        return Response(204)
    if route == ("GET", "/_sandbox/requests"):
        return Response.json(200, {"data": [entry.to_json() for entry in store.recorded()]})
    if route == ("POST", "/_sandbox/reset"):
        store.reset()
        return Response(204)
    match = _FINISH.fullmatch(request.path)
    if match and request.method == "POST":
        try:
            return Response.json(200, store.finish_job(match[1]))
        except KeyError:
            raise not_found(f"No job {match[1]!r} in this project.") from None
    if request.path in ("/_sandbox/faults", "/_sandbox/requests", "/_sandbox/reset") or match:
        raise ProblemError(405, f"{request.method} is not allowed on {request.path}.")
    raise not_found(f"No control endpoint at {request.path}.")


def _add_fault(store: Store, request: Request) -> Response:
    body = json_object(request)
    kind = body.pop("kind", None)
    try:
        fault = make_fault(
            kind if isinstance(kind, str) else "",
            count=body.pop("count", None),
            method=body.pop("method", None),
            path=body.pop("path", None),
            params=body,
        )
    except FaultError as err:
        raise validation_failed({err.field: [str(err)]}) from err
    store.add_fault(fault)
    return Response.json(201, fault.to_json())

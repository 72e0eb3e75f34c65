"""Answers of a hostile or broken server, for the request faults that replace a whole answer."""

from __future__ import annotations

from django_neuraldraft.sandbox.faults import Fault
from django_neuraldraft.sandbox.messages import Request, Response, Writer
from django_neuraldraft.sandbox.problems import ProblemError

_CHUNK = 64 * 1024


def echo_authorization(fault: Fault, request: Request) -> ProblemError:
    """A problem whose detail repeats the ``Authorization`` header it received, key and all."""
    received = request.headers.get("Authorization", "")
    return ProblemError(
        fault.params["status"],
        f"The credentials {received!r} were refused.",
        code="unauthorized" if fault.params["status"] == 401 else None,
    )


def huge_body(fault: Fault) -> Response:
    """A 200 JSON answer of ``bytes`` bytes, chunked and made as it is sent.

    One JSON string padded with spaces, so only its size is wrong. The bytes
    written so far are counted on ``fault.served``, so a test can tell how
    much the client took before it hung up.
    """
    total = fault.params["bytes"]
    head = b'{"id": "job_huge", "padding": "'
    tail = b'"}'

    def stream(write: Writer) -> None:
        remaining = max(0, total - len(head) - len(tail))
        write(head)
        fault.served += len(head)
        filler = b" " * _CHUNK
        while remaining:
            piece = filler[: min(remaining, _CHUNK)]
            write(piece)
            fault.served += len(piece)
            remaining -= len(piece)
        write(tail)
        fault.served += len(tail)

    return Response(200, headers={"Content-Type": "application/json"}, stream=stream)

"""Answers of a hostile or broken server, for the request faults that replace a whole answer."""

from __future__ import annotations

import time
import zlib

from django_neuraldraft.sandbox.faults import Fault
from django_neuraldraft.sandbox.messages import Request, Response, Writer
from django_neuraldraft.sandbox.problems import ProblemError
from django_neuraldraft.sandbox.timestamps import rfc3339

_CHUNK = 64 * 1024


def echo_authorization(fault: Fault, request: Request) -> Response:
    """An answer that repeats the ``Authorization`` header it received, key and all.

    ``into`` says where: the problem's ``detail`` (``"detail"``), the
    ``X-Request-Id`` and ``WWW-Authenticate`` headers of that problem
    (``"headers"``), or a ``200`` failed Job whose message, error message and
    one field name repeat it (``"job"``, for ``GET /v1/jobs/{id}``).
    """
    received = request.headers.get("Authorization", "")
    into = fault.params["into"]
    if into == "job":
        return Response.json(200, _echoing_job(request.path.rsplit("/", 1)[-1], received))
    status = fault.params["status"]
    problem = ProblemError(
        status,
        f"The credentials {received!r} were refused.",
        code="unauthorized" if status == 401 else None,
    )
    if into == "headers":
        problem.detail = "The credentials were refused."
        problem.headers = {"X-Request-Id": received, "WWW-Authenticate": received}
    return problem.to_response(request.request_id)


def _echoing_job(job_id: str, received: str) -> dict[str, object]:
    now = rfc3339(time.time())
    return {
        "id": job_id,
        "type": "image.generate",
        "status": "failed",
        "progress": 100,
        "message": f"Refused {received}",
        "error": {"code": "unauthorized", "message": f"The credentials {received} were refused."},
        "created_at": now,
        "updated_at": now,
        received: "a field named after the credentials",
    }


def huge_body(fault: Fault) -> Response:
    """A 200 JSON answer of ``bytes`` bytes, chunked and made as it is sent.

    ``shape="padding"``: one JSON string padded with spaces, so only its size
    is wrong. ``shape="nested"``: arrays nested half as deep as ``bytes``
    (``[[[…]]]``), valid JSON that a recursive parser cannot take. The bytes
    written so far are counted on ``fault.served``, so a test can tell how
    much the client took before it hung up.
    """
    total = fault.params["bytes"]
    if fault.params["shape"] == "nested":
        depth = max(1, total // 2)
        parts = [(b"[", depth), (b"]", depth)]
    else:
        head, tail = b'{"id": "job_huge", "padding": "', b'"}'
        parts = [(head, 1), (b" ", max(0, total - len(head) - len(tail))), (tail, 1)]

    def stream(write: Writer) -> None:
        for unit, times in parts:
            per_write = max(1, _CHUNK // len(unit))
            while times:
                piece = unit * min(times, per_write)
                write(piece)
                fault.served += len(piece)
                times -= min(times, per_write)

    return Response(200, headers={"Content-Type": "application/json"}, stream=stream)


def gzip_bomb(fault: Fault) -> Response:
    """``bytes`` zero bytes, gzip-compressed (about 1000:1) and sent with ``Content-Encoding``.

    Sent whatever ``Accept-Encoding`` asked for, as a hostile server would;
    compressed as it is sent, so the sandbox never holds the bomb whole.
    """
    block = b"\0" * (1024 * 1024)

    def stream(write: Writer) -> None:
        compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
        remaining = fault.params["bytes"]
        while remaining:
            piece = compressor.compress(block[: min(remaining, len(block))])
            remaining -= min(remaining, len(block))
            if piece:
                write(piece)
                fault.served += len(piece)
        write(compressor.flush())

    headers = {"Content-Type": fault.params["content_type"], "Content-Encoding": "gzip"}
    return Response(200, headers=headers, stream=stream)

"""The CDN stand-in under ``/cdn/``: image bytes without auth, and the download faults."""

from __future__ import annotations

import time

from django_neuraldraft.sandbox.faults import CDN_KINDS, Fault
from django_neuraldraft.sandbox.images import blank_png, hostile_image, padded_png
from django_neuraldraft.sandbox.messages import Request, Response, Writer
from django_neuraldraft.sandbox.problems import ProblemError, not_found
from django_neuraldraft.sandbox.store import Store

# Starts like a PNG so a magic-number sniff passes; the decode must still fail.
_CORRUPT = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\x0dIHDR" + b"this is not image data" * 32
_HTML = (
    b"<!doctype html><html><head><title>Sign in</title></head>"
    b"<body><h1>Please sign in</h1></body></html>"
)
_CACHE_FOREVER = "public, max-age=31536000, immutable"


def serve(store: Store, request: Request) -> Response:
    """Answer a CDN GET or HEAD; a CDN fault replaces the object whether or not it exists."""
    if request.method not in ("GET", "HEAD"):
        raise ProblemError(
            405, "The CDN answers GET and HEAD only.", headers={"Allow": "GET, HEAD"}
        )
    faults = store.take_faults(CDN_KINDS, request.method, request.path)
    if faults:
        return _faulty(faults[0])
    blob = store.blob(request.path)
    if blob is None:
        raise not_found("No such object on the CDN.")
    data = store.blob_bytes(blob)
    return Response(200, data, {"Content-Type": blob.mime_type, "Cache-Control": _CACHE_FOREVER})


def _faulty(fault: Fault) -> Response:
    if fault.kind == "corrupt_image":
        return Response(200, _CORRUPT, {"Content-Type": "image/png"})
    if fault.kind == "wrong_content_type":
        return Response(200, _HTML, {"Content-Type": "text/html; charset=utf-8"})
    if fault.kind == "redirect":
        # Sent as UTF-8 bytes, as a real server would; the header writer speaks latin-1.
        location = fault.params["location"].encode("utf-8").decode("latin-1")
        return Response(fault.params["status"], b"", {"Location": location})
    if fault.kind == "slow_body":
        return _trickle(fault)
    if fault.kind == "hostile_image":
        data, content_type = hostile_image(fault.params["variant"])
        return Response(200, data, {"Content-Type": content_type})
    params = fault.params
    if params["bytes"] is not None:
        data = padded_png(params["bytes"])
    else:
        data = blank_png(params["width"], params["height"])
    return Response(200, data, {"Content-Type": "image/png"})


def _trickle(fault: Fault) -> Response:
    """A valid PNG sent ``bytes`` at a time, one write every ``interval`` seconds (a slow loris).

    Each write comes well within any read timeout, so only a deadline on the
    whole download stops it. It stops when the client hangs up.
    """
    data = blank_png(64, 64)
    step, interval = fault.params["bytes"], fault.params["interval"]

    def stream(write: Writer) -> None:
        for start in range(0, len(data), step):
            write(data[start : start + step])
            fault.served += len(data[start : start + step])
            time.sleep(interval)

    return Response(200, headers={"Content-Type": "image/png"}, stream=stream)

"""The sandbox's command-line options, shared by ``python -m django_neuraldraft.sandbox``
and ``manage.py neuraldraft_sandbox`` so both take the same flags with the same meaning.
"""

from __future__ import annotations

import argparse
import signal
import time
from types import FrameType

from django_neuraldraft.arguments import number
from django_neuraldraft.sandbox.faults import KINDS, Fault, parse_spec
from django_neuraldraft.sandbox.images import RENDER_FORMATS
from django_neuraldraft.sandbox.server import SandboxServer


def _rate_limit(value: str) -> int | None:
    return None if value.lower() in ("off", "none", "0") else int(value)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the sandbox's options to ``parser`` (an ``argparse`` or Django command parser)."""
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    parser.add_argument(
        "--port",
        type=number(int, "a port (0 to 65535)", lambda port: 0 <= port <= 65535),
        default=8765,
        help="port to bind, 0 for any free one (default: 8765)",
    )
    parser.add_argument(
        "--job-seconds", type=float, default=3.0, help="how long a generation job runs"
    )
    parser.add_argument(
        "--image-long-edge", type=int, default=2048, help="long side of generated images"
    )
    parser.add_argument(
        "--image-format",
        choices=tuple(RENDER_FORMATS),
        default="jpeg",
        help="format of generated images (default: jpeg)",
    )
    parser.add_argument(
        "--rate-limit",
        type=_rate_limit,
        default=1000,
        help="requests per minute, or 'off' (default: 1000)",
    )
    parser.add_argument(
        "--rate-burst", type=int, default=None, help="bucket size (default: 2 x rate limit)"
    )
    parser.add_argument("--credits", type=int, default=1_000_000, help="starting credit balance")
    parser.add_argument(
        "--sse-heartbeat", type=float, default=15.0, help="seconds between stream pings"
    )
    parser.add_argument(
        "--webhook-retry-scale", type=float, default=1.0, help="multiplies webhook retry delays"
    )
    parser.add_argument(
        "--webhook-timeout", type=float, default=30.0, help="seconds a receiver gets"
    )
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="KIND[:param=value,...]",
        help=f"inject a fault (repeatable), e.g. status:status=503,count=2; {', '.join(KINDS)}",
    )


def build_server(options: argparse.Namespace) -> tuple[SandboxServer, list[Fault]]:
    """The server the parsed ``options`` describe, faults set, not started yet.

    Raises ``ValueError`` for an option out of range or a fault it cannot set.
    """
    server = SandboxServer(
        options.host,
        options.port,
        job_seconds=options.job_seconds,
        image_long_edge=options.image_long_edge,
        image_format=options.image_format,
        rate_limit=options.rate_limit,
        rate_burst=options.rate_burst,
        credits=options.credits,
        sse_heartbeat=options.sse_heartbeat,
        webhook_retry_scale=options.webhook_retry_scale,
        webhook_timeout=options.webhook_timeout,
    )
    faults = [server.set_fault(kind, **params) for kind, params in map(parse_spec, options.fault)]
    return server, faults


def start(server: SandboxServer, options: argparse.Namespace) -> None:
    """Start ``server``; ``ValueError`` saying to pick another ``--port`` if it cannot listen."""
    try:
        server.start()
    except OSError as err:
        raise ValueError(
            f"Cannot listen on {options.host}:{options.port} ({err.strerror or err}); "
            "pick another --port."
        ) from err


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def serve_until_interrupted() -> None:
    """Block until Ctrl-C or SIGTERM; the caller's ``with server:`` then stops it cleanly."""
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass

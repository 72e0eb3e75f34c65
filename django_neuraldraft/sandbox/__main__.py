"""Command line: ``python -m django_neuraldraft.sandbox`` serves a sandbox until Ctrl-C."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
from types import FrameType

from django_neuraldraft.sandbox import SANDBOX_API_KEY, SandboxServer
from django_neuraldraft.sandbox.faults import KINDS, parse_spec


def _rate_limit(value: str) -> int | None:
    return None if value.lower() in ("off", "none", "0") else int(value)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m django_neuraldraft.sandbox",
        description="Serve a local stand-in for the Neural Draft API.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=8765, help="port to bind, 0 for any free one (default: 8765)"
    )
    parser.add_argument(
        "--job-seconds", type=float, default=3.0, help="how long a generation job runs"
    )
    parser.add_argument(
        "--image-long-edge", type=int, default=1024, help="long side of generated images"
    )
    parser.add_argument(
        "--image-format",
        choices=("png", "jpeg"),
        default="png",
        help="format of generated images (default: png)",
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
        "--webhook-timeout", type=float, default=30.0, help="seconds a webhook receiver gets"
    )
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="KIND[:param=value,...]",
        help=f"inject a fault (repeatable), e.g. status:status=503,count=2; {', '.join(KINDS)}",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log every request")
    return parser


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Run the sandbox in the foreground; SIGINT or SIGTERM stop it cleanly."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
    )
    try:
        server = SandboxServer(
            args.host,
            args.port,
            job_seconds=args.job_seconds,
            image_long_edge=args.image_long_edge,
            image_format=args.image_format,
            rate_limit=args.rate_limit,
            rate_burst=args.rate_burst,
            credits=args.credits,
            sse_heartbeat=args.sse_heartbeat,
            webhook_retry_scale=args.webhook_retry_scale,
            webhook_timeout=args.webhook_timeout,
        )
        faults = [
            server.set_fault(kind, **options) for kind, options in map(parse_spec, args.fault)
        ]
    except ValueError as err:
        parser.error(str(err))
    signal.signal(signal.SIGTERM, _interrupt)
    with server:
        print(f"Neural Draft sandbox running at {server.base_url}", flush=True)
        print(f"API key: {SANDBOX_API_KEY}", flush=True)
        for fault in faults:
            print(f"Fault: {fault.to_json()}", flush=True)
        print("Press Ctrl-C to stop.", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            print("Stopping.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

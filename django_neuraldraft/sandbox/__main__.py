"""Command line: ``python -m django_neuraldraft.sandbox`` serves a sandbox until Ctrl-C."""

from __future__ import annotations

import argparse
import logging
import sys

from django_neuraldraft.sandbox import SANDBOX_API_KEY
from django_neuraldraft.sandbox.cli import (
    add_arguments,
    build_server,
    serve_until_interrupted,
    start,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m django_neuraldraft.sandbox",
        description="Serve a local stand-in for the Neural Draft API.",
    )
    add_arguments(parser)
    parser.add_argument("-v", "--verbose", action="store_true", help="log every request")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the sandbox in the foreground; SIGINT or SIGTERM stop it cleanly."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
    )
    try:
        server, faults = build_server(args)
    except ValueError as err:
        parser.error(str(err))
    try:
        start(server, args)
    except ValueError as err:
        print(err, file=sys.stderr)
        return 1
    with server:
        print(f"Neural Draft sandbox running at {server.base_url}", flush=True)
        print(f"API key: {SANDBOX_API_KEY}", flush=True)
        for fault in faults:
            print(f"Fault: {fault.to_json()}", flush=True)
        print("Press Ctrl-C to stop.", flush=True)
        serve_until_interrupted()
        print("Stopping.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

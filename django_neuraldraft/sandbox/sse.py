"""The job progress stream: ``text/event-stream`` framing, resume and heartbeats."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from django_neuraldraft.sandbox.jobs import StreamEvent
from django_neuraldraft.sandbox.messages import Writer
from django_neuraldraft.sandbox.store import Store

PING = b": ping\n\n"


def frame(event: StreamEvent) -> bytes:
    """One event: ``id``, ``event`` and a single-line JSON ``data``, then a blank line."""
    data = json.dumps(event.data, separators=(",", ":"))
    return f"id: {event.id}\nevent: {event.event}\ndata: {data}\n\n".encode()


def last_event_id(header: str | None) -> int:
    """The ``Last-Event-ID`` a reconnecting client sent; unreadable means from the start."""
    try:
        return max(0, int((header or "0").strip()))
    except ValueError:
        return 0


def job_stream(
    store: Store, job_id: str, after: int, heartbeat: float
) -> Callable[[Writer], None]:
    """Return the body writer for one stream: events after ``after`` until the job ends.

    A ``: ping`` comment goes out whenever ``heartbeat`` seconds pass without
    a write, so proxies and clients can tell a quiet stream from a dead one.
    The writer raises ``OSError`` once the client hangs up, which ends the
    stream.
    """

    def run(write: Writer) -> None:
        sent = after
        while True:
            update = store.next_stream_events(job_id, sent, time.monotonic() + heartbeat)
            if update is None:
                return
            events, terminal = update
            if not events and not terminal:
                write(PING)
                continue
            if events:
                write(b"".join(frame(event) for event in events))
                sent = events[-1].id
            if terminal:
                return

    return run

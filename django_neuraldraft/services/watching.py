"""Waiting for one job in the foreground: its progress stream, polling behind it, the image bound.

A management command that waits (``neuraldraft_generate --wait``) must work on a
site with no Celery worker: it submits the job itself if nobody has, follows the
API's progress stream for a live display, and binds the image through
:func:`~.polling.poll_once` like every other follower. When the stream cannot be
read, it polls on the schedule ``poll_once`` returns. Everything it does is safe
alongside a worker doing the same.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..choices import JobStatus
from ..client import JobEvent
from ..models import ImageVersion, Job
from ..terminal import printable
from . import rendition_chain
from .generation import submit
from .polling import poll_once
from .remote import TRANSIENT_ERRORS, get_client

logger = logging.getLogger(__name__)

#: Longest message shown from the network; the rest is cut.
MESSAGE_LIMIT = 200

#: Seconds between submit attempts while Neural Draft cannot be reached.
_SUBMIT_RETRY = 2.0

#: Longest single wait for the stream's next event; the deadline is checked after
#: each. A time-out beyond ``threading.TIMEOUT_MAX`` would overflow a lock's wait.
_LONGEST_BLOCK = 60.0


@dataclass(frozen=True)
class Update:
    """What the job is doing now, cleaned for a terminal: 0 <= ``progress`` <= 100."""

    status: str
    progress: int
    message: str


@dataclass(frozen=True)
class WaitOutcome:
    """How waiting ended.

    ``version`` is the image bound to the key, if the job's image is bound;
    ``timed_out`` says the wait ended before the job did (the job goes on);
    ``streamed`` says progress came from the event stream rather than polls;
    ``send_error`` is why the job could not be sent, when it never was.
    """

    job: Job
    version: ImageVersion | None
    timed_out: bool
    streamed: bool
    send_error: str = ""


def clean_progress(value: Any, default: int = 0) -> int:
    """A progress value from the network as an int in 0..100, or ``default``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return default
    return max(0, min(100, int(value)))


def clean_message(value: Any) -> str:
    """A message from the network without control characters, so it cannot drive a terminal."""
    return printable(value, MESSAGE_LIMIT) if isinstance(value, str) else ""


def wait_for(
    job: Job,
    *,
    timeout: float,
    on_update: Callable[[Update], None] | None = None,
    stream: bool = True,
) -> WaitOutcome:
    """Follow ``job`` until it ends and its image is bound, or ``timeout`` seconds pass.

    ``on_update`` is called with every change of progress; it runs in the
    calling thread. ``stream=False`` skips the event stream and only polls.
    ``KeyboardInterrupt`` propagates: the job itself is not touched and goes on.
    """
    watcher = _Watcher(job, time.monotonic() + timeout, on_update or (lambda update: None))
    return watcher.run(stream)


class _Watcher:
    def __init__(self, job: Job, deadline: float, on_update: Callable[[Update], None]) -> None:
        self.job = job
        self.deadline = deadline
        self.on_update = on_update
        self.last: Update | None = None
        self.streamed = False
        self.send_error = ""

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def emit(self, status: str, progress: int, message: str) -> None:
        update = Update(status, progress, message)
        if update != self.last:
            self.last = update
            self.on_update(update)

    def emit_job(self) -> None:
        job = self.job
        # A job failed after it finished (its image refused) still says "Image ready".
        message = job.error_message if job.status == JobStatus.FAILED else ""
        self.emit(job.status, job.progress, clean_message(message or job.message))

    def run(self, stream: bool) -> WaitOutcome:
        self.job.refresh_from_db()
        self.emit_job()
        if not self.submitted():
            return self.outcome(timed_out=not self.job.is_terminal)
        if stream and not self.job.is_terminal and not self.follow_stream():
            # One last poll at the deadline: it ends a job past JOB_TIMEOUT, or
            # binds an image that finished as the stream went quiet.
            return self.poll_until_done(once=True)
        return self.poll_until_done()

    def submitted(self) -> bool:
        """Send the job if no worker has yet; False if the deadline passed first."""
        while self.job.remote_id is None and not self.job.is_terminal:
            try:
                self.job = submit(self.job)
            except TRANSIENT_ERRORS as err:
                logger.info("Submitting job %s failed for now: %s", self.job.pk, err)
                self.send_error = str(err)
                if self.remaining() <= _SUBMIT_RETRY:
                    return False
                time.sleep(_SUBMIT_RETRY)
            self.job.refresh_from_db()
        self.emit_job()
        return True

    def follow_stream(self) -> bool:
        """Show the stream's events until it ends; False if the deadline passed first.

        The stream is read in a daemon thread so the deadline holds even while
        the server only sends keep-alive comments, which yield no event.
        """
        events: queue.Queue[JobEvent | BaseException | None] = queue.Queue()
        stop = threading.Event()
        reader = threading.Thread(
            target=_read_stream,
            args=(self.job.remote_id, events, stop),
            name=f"neuraldraft-watch-{self.job.remote_id}",
            daemon=True,
        )
        reader.start()
        try:
            while True:
                remaining = self.remaining()
                if remaining <= 0:
                    return False
                try:
                    item = events.get(timeout=min(remaining, _LONGEST_BLOCK))
                except queue.Empty:
                    continue
                if item is None:
                    return True
                if isinstance(item, BaseException):
                    logger.info(
                        "Following job %s by its stream failed, polling instead: %s",
                        self.job.remote_id,
                        item,
                    )
                    return True
                self.streamed = True
                self.show_event(item)
        finally:
            stop.set()

    def show_event(self, event: JobEvent) -> None:
        data = event.data
        last = self.last or Update(JobStatus.PENDING, 0, "")
        if event.event == "progress":
            progress = max(clean_progress(data.get("progress"), last.progress), last.progress)
            message = clean_message(data.get("message")) or last.message
            self.emit(JobStatus.PROCESSING if progress else last.status, progress, message)
        elif event.event == "step" and data.get("active") is True:
            self.emit(JobStatus.PROCESSING, last.progress, last.message)

    def poll_until_done(self, *, once: bool = False) -> WaitOutcome:
        """Poll on ``poll_once``'s schedule until the job is done, the deadline, or ``once``."""
        while True:
            outcome = poll_once(self.job)
            self.job = outcome.job
            self.emit_job()
            if outcome.next_poll_in is None:
                if outcome.version is not None:
                    rendition_chain.make_after_bind(outcome.version)
                return self.outcome(timed_out=False, version=outcome.version)
            remaining = self.remaining()
            if once or remaining <= 0:
                return self.outcome(timed_out=True)
            time.sleep(min(outcome.next_poll_in, remaining))

    def outcome(self, *, timed_out: bool, version: ImageVersion | None = None) -> WaitOutcome:
        self.job.refresh_from_db()
        if version is None:
            version = ImageVersion.objects.filter(job=self.job).first()
        send_error = self.send_error if self.job.remote_id is None else ""
        return WaitOutcome(self.job, version, timed_out, self.streamed, send_error)


def _read_stream(
    remote_id: str, events: queue.Queue[JobEvent | BaseException | None], stop: threading.Event
) -> None:
    """Queue the stream's events, then ``None`` at its end, or the error that broke it."""
    try:
        stream = get_client().stream_job(remote_id)
        try:
            for event in stream:
                events.put(event)
                if stop.is_set():
                    return
        finally:
            stream.close()
    except Exception as err:  # whatever breaks the stream, polling takes over
        events.put(err)
        return
    events.put(None)

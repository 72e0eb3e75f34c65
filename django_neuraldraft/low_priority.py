"""CPU-bound work that gives way to the rest of the machine: a thread of its own, reniced.

Renditions take about a CPU-second per image and share the worker's machine
with what people wait for: the polls and ingests of other jobs, the web
processes. Celery has no CPU priority of its own, so on Linux, where every
thread has its own nice value, the work runs in a short-lived thread at
:data:`NICENESS`: the scheduler gives it the CPU time nothing else wants, and
a burst of renditions no longer delays the next image's ingest. Raising a
nice value needs no privilege; the thread ends with the work, so nothing has
to lower it again. Elsewhere the work runs in the thread all the same, at
the usual priority, since only Linux applies a nice value per thread.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from django.db import connections

logger = logging.getLogger(__name__)

#: How much nicer than the worker the thread runs (0 to 19; Linux's default is 0).
NICENESS = 10

Result = TypeVar("Result")


def call_at_low_priority(function: Callable[..., Result], *args: Any) -> Result:
    """Return ``function(*args)``, computed in a thread at a lower CPU priority.

    What it raises is raised here. If this thread is interrupted meanwhile (a
    task's soft time limit), it waits for the work to stop before it lets the
    interruption through, so that the caller's cleanup sees everything the
    work did.
    """
    outcome: dict[str, Any] = {}

    def run() -> None:
        _renice_this_thread()
        try:
            outcome["value"] = function(*args)
        except BaseException as err:
            outcome["error"] = err
        finally:
            connections.close_all()

    worker = threading.Thread(target=run, name="neuraldraft-low-priority", daemon=True)
    try:
        worker.start()
        worker.join()
    except BaseException:
        if worker.ident is not None:
            worker.join()
        raise
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def _renice_this_thread() -> None:
    if not sys.platform.startswith("linux"):
        return
    thread = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, thread, os.getpriority(os.PRIO_PROCESS, thread) + NICENESS)
    except OSError as err:
        logger.debug("Could not lower the priority of thread %s: %s", thread, err)

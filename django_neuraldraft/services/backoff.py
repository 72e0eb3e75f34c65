"""How long to wait before trying Neural Draft again after a transient error: the one policy.

Capped exponential back-off with full jitter over the last half (see
``docs/lifecycle.rst``); a ``Retry-After`` from the server wins, up to
:data:`RETRY_AFTER_MAX`. Polls of a running job follow
:mod:`django_neuraldraft.poll_schedule` instead: this is for calls that failed.
"""

from __future__ import annotations

import random

#: Seconds before the second attempt, at most; each later wait doubles.
RETRY_BASE = 1.0
#: The longest wait between two attempts, in seconds.
RETRY_CAP = 60.0
#: The longest wait a server's ``Retry-After`` imposes, in seconds. The API
#: limits requests per minute; a server asking for much more is broken or
#: hostile, and a webhook's retries, which no job deadline cuts short, would
#: wait as long as it said.
RETRY_AFTER_MAX = 600.0


def server_wait(retry_after: float | None) -> float | None:
    """The seconds a server's ``Retry-After`` asks for, at most :data:`RETRY_AFTER_MAX`.

    ``None`` if it asks for no wait: the caller's own schedule applies then.
    """
    if not retry_after:
        return None
    return min(float(retry_after), RETRY_AFTER_MAX)


def retry_delay(failures: int, retry_after: float | None = None) -> float:
    """Seconds to wait after ``failures`` consecutive failed attempts (1 or more)."""
    wait = server_wait(retry_after)
    if wait is not None:
        return wait
    return min(RETRY_CAP, RETRY_BASE * 2 ** max(failures - 1, 0)) * random.uniform(0.5, 1.0)

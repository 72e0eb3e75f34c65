"""How long to wait before trying Neural Draft again after a transient error: the one policy.

Capped exponential back-off with full jitter over the last half (see
``docs/lifecycle.rst``); a ``Retry-After`` from the server wins. Polls of a running job follow
:mod:`django_neuraldraft.poll_schedule` instead: this is for calls that failed.
"""

from __future__ import annotations

import random

#: Seconds before the second attempt, at most; each later wait doubles.
RETRY_BASE = 1.0
#: The longest wait between two attempts, in seconds.
RETRY_CAP = 60.0


def retry_delay(failures: int, retry_after: float | None = None) -> float:
    """Seconds to wait after ``failures`` consecutive failed attempts (1 or more)."""
    if retry_after:
        return float(retry_after)
    return min(RETRY_CAP, RETRY_BASE * 2 ** max(failures - 1, 0)) * random.uniform(0.5, 1.0)

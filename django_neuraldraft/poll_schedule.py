"""How long to wait before polling a job again: the one place that decides it.

Plain Python, no Django: the inputs are what the local Job knows after a poll,
so the policy can be tested and benchmarked on its own.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class PollState:
    """What is known of a job right after a poll."""

    #: Polls made so far, this one included.
    polls: int
    #: Seconds since the job was created locally.
    elapsed: float
    #: Progress (0-100) the job reported in this poll.
    progress: int | None = None
    #: Progress it reported in the poll before, if any.
    previous_progress: int | None = None


def next_poll_delay(state: PollState, *, initial: float, longest: float) -> float:
    """Seconds to wait before the next poll of a job in ``state``.

    The delay grows by half with each poll, from ``initial`` to ``longest``,
    with ±20% jitter so that jobs submitted together do not poll together for ever.
    """
    return min(longest, initial * 1.5 ** max(state.polls - 1, 0)) * random.uniform(0.8, 1.2)

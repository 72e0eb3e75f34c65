"""How long to wait before polling a job again: the one place that decides it.

Plain Python, no Django: the inputs are what the local Job knows after a poll,
so the policy can be tested and benchmarked on its own.

Generations take from seconds to minutes, so a fixed backoff either polls a
long job far too often or shows a short one's image late. The policy reads
the job's own pace instead: two readings of its ``progress`` give a rate, the
rate says when the job should end, and the next poll goes there. While there
is no pace to read (the job is queued, or this is the first reading) the
delay grows with the job's age; when progress stalls it backs off. The first
poll of all comes from the site's own history: how long its latest jobs took.
No delay ever exceeds ``longest`` (``POLL_MAX``). See docs/benchmarks.rst for
what it costs in requests and delay against the sandbox's jobs.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

#: How many of the site's latest finished jobs the first poll of a new one reads.
HISTORY_SIZE = 20
#: Fewer finished jobs than this say too little: the first poll waits ``initial``.
HISTORY_MIN = 5
#: The first poll waits this share of the quickest of them. Jobs of one site
#: take about as long as each other, so a poll much before that sees only that
#: the job is running, and its next poll has to come soon in case it just
#: started, which costs one poll more than needed for every long job.
HISTORY_SHARE = 0.9

#: Without a pace to read, the next poll comes after this many times the job's age.
AGE_FACTOR = 8.0
#: A stalled job's next poll waits this many times the interval that saw no progress.
STALL_FACTOR = 2.0
#: Aim this much past the end the pace predicts: jobs tend to slow down at the
#: end, and a poll just too early costs one more, one just too late only a moment.
AIM_MARGIN = 1.1
#: Below this progress a prediction is too far to aim at (the pace a job has
#: early on says little of its end): the next poll goes ``FAR_SHARE`` of the way.
NEAR_PROGRESS = 50
FAR_SHARE = 0.6
#: A job seen running for the first time is read again after this many times
#: the longest it can have been running: the two readings then give its pace.
RUNNING_FACTOR = 2.0
#: Never poll again sooner than this share of ``initial`` (a job about to end).
BRISK_SHARE = 0.25
#: Without a pace, ``initial`` grows by half at most this many times: 1.5**100
#: is past any ``longest``, and 1.5 to the power of a long-followed job's
#: poll count (some 1,750) is past what a float holds.
MAX_GROWTH_STEPS = 100


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
    #: Seconds since creation at the poll before, if any.
    previous_elapsed: float | None = None

    @property
    def pace(self) -> float | None:
        """Progress points per second between two polls that both saw the job running.

        ``None`` unless both readings are above zero and progress moved: a
        reading of zero does not say when the job left the queue.
        """
        if (
            not self.progress
            or not self.previous_progress
            or self.previous_elapsed is None
            or self.progress <= self.previous_progress
            or self.elapsed <= self.previous_elapsed
        ):
            return None
        return (self.progress - self.previous_progress) / (self.elapsed - self.previous_elapsed)

    @property
    def running_for(self) -> float | None:
        """The longest the job can have been running, if it has started.

        It left the queue after the last reading of zero (or after its
        creation), so that is at most the time since then.
        """
        if not self.progress:
            return None
        since = self.previous_elapsed if self.previous_progress == 0 else None
        return max(self.elapsed - (since or 0.0), 0.0)

    @property
    def stalled(self) -> bool:
        """Whether the job was running and did not move since the poll before."""
        return (
            self.progress is not None
            and self.progress > 0
            and self.previous_progress == self.progress
            and self.previous_elapsed is not None
            and self.elapsed > self.previous_elapsed
        )


def first_poll_delay(
    recent: Sequence[float],
    *,
    initial: float,
    longest: float,
    safety_net: float | None = None,
) -> float:
    """Seconds from sending a job to its first poll.

    ``recent`` holds how long the site's latest finished jobs ran, in
    seconds (up to ``HISTORY_SIZE`` of them). With at least ``HISTORY_MIN``,
    the first poll waits ``HISTORY_SHARE`` of the quickest, but no less than
    ``initial`` and no more than ``longest``; a job quicker than all of them
    is seen late by at most the difference. Without that history, and for
    jobs of one or two seconds, it waits ``initial`` (``POLL_INITIAL``).
    With webhooks on (``safety_net`` set) the delivery should come first: it
    waits ``safety_net``.
    """
    if safety_net is not None:
        return safety_net
    if len(recent) < HISTORY_MIN:
        return initial
    return max(initial, min(longest, HISTORY_SHARE * min(recent)))


def next_poll_delay(
    state: PollState, *, initial: float, longest: float, safety_net: float | None = None
) -> float:
    """Seconds to wait before the next poll of a job in ``state``.

    With webhooks on, ``safety_net`` is set: the delivery says when the job
    ended, and polls only catch a delivery that was lost, every ``safety_net``
    seconds (-20% jitter), whatever the job's pace.

    Otherwise, from the most informed case to the least:

    - A pace (two readings of a running job): from ``NEAR_PROGRESS`` on, the
      time the job needs at that pace to end, times ``AIM_MARGIN``; below it,
      ``FAR_SHARE`` of that time, for a closer reading before aiming. Not
      jittered: jobs end at their own moments already.
    - Stalled: ``STALL_FACTOR`` times the interval that saw no progress.
    - Running but no pace yet (its first reading above zero):
      ``RUNNING_FACTOR`` times the longest it can have been running, or the
      time it needs at its slowest possible pace if that is sooner.
    - Queued, or nothing read: the job's age times ``AGE_FACTOR``, or
      ``initial`` growing by half with each poll, whichever is longer.

    No delay is shorter than ``BRISK_SHARE`` of ``initial`` or longer than
    ``longest``. Delays not aimed at a predicted end get -20% jitter, so that
    jobs submitted together do not poll together for ever.
    """
    if safety_net is not None:
        return safety_net * random.uniform(0.8, 1.0)
    brisk = BRISK_SHARE * initial
    progress = state.progress or 0
    pace = state.pace
    if pace is not None:
        share = AIM_MARGIN if progress >= NEAR_PROGRESS else FAR_SHARE
        return min(longest, max(brisk, share * (100 - progress) / pace))
    running_for = state.running_for
    if state.stalled and state.previous_elapsed is not None:
        delay = STALL_FACTOR * (state.elapsed - state.previous_elapsed)
    elif running_for is not None and progress:
        # At the slowest pace it can have, the job needs at most this long to end.
        at_most = (100 - progress) * running_for / progress
        delay = min(RUNNING_FACTOR * running_for, FAR_SHARE * at_most)
    else:
        growth_steps = min(max(state.polls - 1, 0), MAX_GROWTH_STEPS)
        delay = max(initial * 1.5**growth_steps, AGE_FACTOR * state.elapsed)
    return min(longest, max(brisk, delay * random.uniform(0.8, 1.0)))

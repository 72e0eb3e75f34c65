"""The poll schedule: delays from a job's pace, checked alone and against the sandbox's jobs."""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Sequence

import pytest

from django_neuraldraft.poll_schedule import (
    AIM_MARGIN,
    BRISK_SHARE,
    FAR_SHARE,
    HISTORY_MIN,
    HISTORY_SHARE,
    RUNNING_FACTOR,
    PollState,
    first_poll_delay,
    next_poll_delay,
)
from tests.sandbox.support import make_job

INITIAL, LONGEST = 2.0, 30.0


def delay(state: PollState, **options: float) -> float:
    return next_poll_delay(state, initial=INITIAL, longest=LONGEST, **options)


class TestFirstPoll:
    def first(self, recent: list[float], **options: float) -> float:
        return first_poll_delay(recent, initial=INITIAL, longest=LONGEST, **options)

    @pytest.mark.parametrize("recent", [[], [40.0] * (HISTORY_MIN - 1)])
    def test_without_enough_history_it_waits_poll_initial(self, recent):
        assert self.first(recent) == INITIAL

    def test_with_history_it_waits_a_share_of_the_quickest_recent_job(self):
        recent = [21.0, 20.0, 24.0, 22.0, 30.0]
        assert self.first(recent) == pytest.approx(HISTORY_SHARE * 20.0)

    def test_it_never_waits_longer_than_poll_max(self):
        assert self.first([10**9] * HISTORY_MIN) == LONGEST

    def test_short_jobs_are_still_polled_after_poll_initial(self):
        assert self.first([0.5] * HISTORY_MIN) == INITIAL

    def test_with_webhooks_on_it_waits_for_the_safety_net(self):
        assert self.first([20.0] * HISTORY_MIN, safety_net=600) == 600


class TestWithoutAPace:
    def test_a_job_with_nothing_read_backs_off_by_half_each_poll(self):
        delays = [delay(PollState(polls=n, elapsed=0.0)) for n in (1, 2, 3)]
        assert 1.6 <= delays[0] <= 2.0
        assert 2.4 <= delays[1] <= 3.0
        assert 3.6 <= delays[2] <= 4.5

    def test_a_job_polled_thousands_of_times_without_a_pace_waits_poll_max(self):
        # A day's JOB_TIMEOUT at a POLL_MAX of 30 s is 2,880 polls; 1.5**2879 overflows.
        assert 0.8 * LONGEST <= delay(PollState(polls=2_880, elapsed=5.0, progress=0)) <= LONGEST

    def test_a_queued_job_waits_longer_the_older_it_is(self):
        young = delay(PollState(polls=1, elapsed=1.0, progress=0))
        old = delay(PollState(polls=1, elapsed=4.0, progress=0, previous_progress=0))
        assert young < old <= LONGEST

    @pytest.mark.parametrize("submitted_with", [None, 0])
    def test_a_job_seen_running_is_read_again_soon_to_learn_its_pace(self, submitted_with):
        state = PollState(polls=1, elapsed=2.0, progress=10, previous_progress=submitted_with)
        assert 0.8 * RUNNING_FACTOR * 2 <= delay(state) <= RUNNING_FACTOR * 2

    def test_a_job_far_along_at_its_first_reading_is_read_before_its_latest_end(self):
        state = PollState(
            polls=2, elapsed=9.0, progress=90, previous_progress=0, previous_elapsed=1.0
        )
        # Running for at most 8 s to reach 90 %: at most 8 * 10 / 90 s to go.
        assert 0.8 * FAR_SHARE * 8 / 9 <= delay(state) <= FAR_SHARE * 8 / 9


class TestWithAPace:
    def test_near_the_end_it_aims_just_past_the_predicted_end(self):
        state = PollState(
            polls=3, elapsed=8.0, progress=80, previous_progress=20, previous_elapsed=2.0
        )
        assert state.pace == 10
        assert delay(state) == pytest.approx(AIM_MARGIN * 2.0)

    def test_far_from_the_end_it_goes_part_of_the_way(self):
        state = PollState(
            polls=2, elapsed=6.0, progress=30, previous_progress=10, previous_elapsed=2.0
        )
        assert delay(state) == pytest.approx(FAR_SHARE * 70 / 5)

    def test_poll_max_caps_a_slow_job(self):
        state = PollState(
            polls=2, elapsed=12.0, progress=10, previous_progress=5, previous_elapsed=2.0
        )
        assert delay(state) == LONGEST

    def test_a_job_about_to_end_is_not_hammered(self):
        state = PollState(
            polls=4, elapsed=10.0, progress=99, previous_progress=50, previous_elapsed=5.0
        )
        assert delay(state) == pytest.approx(0.25 * INITIAL)

    def test_a_reading_of_zero_gives_no_pace(self):
        state = PollState(
            polls=2, elapsed=6.0, progress=30, previous_progress=0, previous_elapsed=2.0
        )
        assert state.pace is None


class TestStalls:
    def test_a_stalled_job_backs_off(self):
        state = PollState(
            polls=4, elapsed=20.0, progress=40, previous_progress=40, previous_elapsed=15.0
        )
        assert 0.8 * 10 <= delay(state) <= 10

    def test_the_back_off_stops_at_poll_max(self):
        state = PollState(
            polls=9, elapsed=200.0, progress=40, previous_progress=40, previous_elapsed=100.0
        )
        assert 0.8 * LONGEST <= delay(state) <= LONGEST


class TestSafetyNet:
    def test_with_webhooks_on_polls_are_a_slow_safety_net_whatever_the_pace(self):
        state = PollState(
            polls=3, elapsed=8.0, progress=80, previous_progress=20, previous_elapsed=2.0
        )
        assert 0.8 * 600 <= delay(state, safety_net=600) <= 600


def follow(
    duration: float, job_id: str, draw: random.Random, recent: Sequence[float] = ()
) -> tuple[int, float]:
    """Poll a sandbox job on the schedule; return the polls made and how late the last one was.

    Time is simulated: the job's timeline is read at chosen instants. ``draw``
    stands for what a real run adds: the first poll's wait in the queue, the
    API's created_at truncated to the second, each poll's request time.
    ``recent`` is how long the site's latest jobs took.
    """
    job = make_job(duration, job_id=job_id, created_at=0.0)
    first = first_poll_delay(recent, initial=INITIAL, longest=LONGEST)
    now, polls, previous = first + draw.uniform(0, 1), 0, (0, -draw.uniform(0, 0.9))
    while True:
        polls += 1
        seen = job.to_json(now)
        if seen["status"] == "completed":
            return polls, now - duration
        state = PollState(polls, now, seen["progress"], *previous)
        previous = (seen["progress"], now)
        now += delay(state) + draw.uniform(0.05, 0.5)


def followed(duration: float, with_history: bool = False) -> tuple[float, float, float]:
    """200 sandbox jobs of ``duration`` followed: mean polls, p95 and worst lateness.

    ``with_history``: the site's latest 20 jobs took as long, on the API's
    clock, whose times are truncated to the second.
    """
    random.seed(9)
    draw = random.Random(duration)
    recent = [math.floor(duration - draw.uniform(0, 1)) for _ in range(20)] if with_history else []
    runs = [follow(duration, f"job_{n:012d}", draw, recent) for n in range(200)]
    lateness = sorted(late for _, late in runs)
    mean_polls = sum(count for count, _ in runs) / len(runs)
    return mean_polls, lateness[int(0.95 * len(lateness))], lateness[-1]


@pytest.mark.parametrize("duration", [10.0, 60.0])
def test_the_sandbox_jobs_are_followed_with_few_polls_and_seen_soon_after_they_end(duration):
    polls, p95_lateness, worst = followed(duration)
    assert polls <= 4.5
    assert p95_lateness <= 3.0
    assert worst <= LONGEST


@pytest.mark.parametrize(("duration", "most_polls"), [(10.0, 3.2), (30.0, 3.6), (60.0, 4.0)])
def test_with_a_history_of_like_jobs_fewer_polls_see_them_as_soon(duration, most_polls):
    polls, p95_lateness, _worst = followed(duration, with_history=True)
    assert polls <= most_polls
    assert p95_lateness <= 3.0


#: What a hostile or broken API can make a job look like after a poll (progress
#: is clamped to 0-100 by ``mirror``; these are also the values outside it): going
#: backwards, 0 for ever, 100 while still processing, and a ``created_at`` in the
#: future (negative elapsed) or long past.
HOSTILE_PROGRESS = [None, -5, 0, 1, 49, 50, 99, 100, 101, 10**9]
HOSTILE_ELAPSED = [-86_400.0, -1.0, 0.0, 1e-6, 0.5, 10.0, 3_600.0, 10**9]
HOSTILE_POLLS = [0, 1, 7, 2_880, 10**6]


def test_every_hostile_state_gets_a_finite_delay_between_brisk_and_poll_max():
    for polls, progress, previous_progress, elapsed, previous_elapsed in itertools.product(
        HOSTILE_POLLS,
        HOSTILE_PROGRESS,
        HOSTILE_PROGRESS,
        HOSTILE_ELAPSED,
        [None, *HOSTILE_ELAPSED],
    ):
        state = PollState(polls, elapsed, progress, previous_progress, previous_elapsed)
        seconds = delay(state)
        assert math.isfinite(seconds) and BRISK_SHARE * INITIAL <= seconds <= LONGEST, state

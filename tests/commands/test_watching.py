"""``services.watching``: following one job by its stream, polls behind it, and what it shows."""

from __future__ import annotations

import pytest

from django_neuraldraft import services
from django_neuraldraft.services.watching import clean_message, clean_progress, wait_for

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("neuraldraft_settings")]


def test_the_stream_carries_progress_and_one_poll_binds(sandbox):
    job = services.generate("hero.background", prompt="A quiet harbour")
    updates = []

    outcome = wait_for(job, timeout=60, on_update=updates.append)

    assert outcome.streamed
    assert not outcome.timed_out
    assert outcome.version.job == outcome.job
    assert [update.progress for update in updates] == sorted(u.progress for u in updates)
    assert updates[-1].status == "completed"
    assert len({update.progress for update in updates}) > 2
    sandbox.assert_called("GET", f"/v1/jobs/{outcome.job.remote_id}", times=1)


def test_without_the_stream_it_polls(sandbox):
    job = services.generate("hero.background", prompt="A quiet harbour")

    outcome = wait_for(job, timeout=60, stream=False)

    assert not outcome.streamed
    assert outcome.version is not None
    assert not [r for r in sandbox.requests if r.path.endswith("/stream")]


def test_a_job_that_already_ended_is_not_followed(sandbox, make_image):
    version = make_image("hero.background")
    before = len(sandbox.requests)

    outcome = wait_for(version.job, timeout=60)

    assert outcome.version == version
    assert len(sandbox.requests) == before


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Rendering", "Rendering"),
        ("\x1b[2J\x1b]0;owned\x07Rendering\r\n  details", "[2J ]0;owned Rendering details"),
        ("x" * 1000, "x" * 200),
        (None, ""),
        (42, ""),
    ],
)
def test_messages_from_the_network_cannot_drive_a_terminal(value, expected):
    assert clean_message(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"), [(50, 50), (150, 100), (-3, 0), (12.7, 12), ("50", 7), (True, 7)]
)
def test_progress_is_bounded(value, expected):
    assert clean_progress(value, default=7) == expected

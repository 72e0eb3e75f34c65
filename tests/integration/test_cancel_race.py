"""A cancel that races a submit still in flight never leaves a remote job running unseen."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from django_neuraldraft import services
from django_neuraldraft.choices import JobStatus
from django_neuraldraft.models import Job
from django_neuraldraft.testing import run_sandbox
from tests.integration.conftest import publishing_nowhere, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def sandbox():
    """A sandbox of our own whose jobs run long enough to be cancelled."""
    with run_sandbox(job_seconds=30.0) as server:
        yield server


def submit_in_background(job_pk: int) -> threading.Thread:
    def send() -> None:
        try:
            services.poll_once(Job.objects.get(pk=job_pk))
        finally:
            connection.close()

    thread = threading.Thread(target=send)
    thread.start()
    return thread


def test_a_cancel_during_the_submit_cancels_the_remote_job(postgresql, sandbox, live_neuraldraft):
    sandbox.set_fault("latency", seconds=1.0, method="POST", path="/v1/images")
    with publishing_nowhere():
        job = services.request_generation("race.cancel", prompt="A lighthouse in fog")
    sending = submit_in_background(job.pk)
    wait_for(
        lambda: [r for r in sandbox.requests if r.method == "POST" and r.status is None],
        timeout=10,
        describe="the submit to be in flight",
    )

    job = services.cancel(job)

    assert (job.status, job.remote_id) == (JobStatus.PENDING, None)
    assert job.cancel_requested_at is not None
    sending.join(timeout=30)
    job.refresh_from_db()
    (remote_id,) = sandbox.jobs
    assert (job.status, job.remote_id) == (JobStatus.CANCELLED, remote_id)
    assert sandbox.jobs[remote_id]["status"] == "cancelled"
    sandbox.assert_called("POST", f"/v1/jobs/{remote_id}/cancel", times=1)


def test_a_cancel_that_wins_the_race_means_nothing_is_sent(postgresql, sandbox, live_neuraldraft):
    with publishing_nowhere():
        job = services.request_generation("race.first", prompt="A lighthouse at noon")
    assert services.cancel(job).status == JobStatus.CANCELLED
    submit_in_background(job.pk).join(timeout=30)
    assert sandbox.requests == []
    job.refresh_from_db()
    assert (job.status, job.remote_id) == (JobStatus.CANCELLED, None)

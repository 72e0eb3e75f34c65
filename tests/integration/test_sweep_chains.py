"""An outage with a sweep that runs often never multiplies a job's chain of task messages.

Scaled down from the reported case (a 5-minute 503 outage, the sweep every
minute): a few seconds of 503 on ``POST /images``, the sweep every half second
with a short grace, a real worker on Redis, and each job's next message
delivered three times once it is sent. What is counted is what
Neural Draft sees: POSTs per job (one chain makes as many as its back-off
allows, each extra chain as many again) and polls per job (never two at once).
"""

from __future__ import annotations

import itertools
import time
from collections import defaultdict

import pytest

from django_neuraldraft import services, tasks
from django_neuraldraft.choices import JobStatus
from django_neuraldraft.models import Job
from django_neuraldraft.services.backoff import RETRY_BASE, RETRY_CAP
from django_neuraldraft.testing import run_sandbox
from tests.integration.conftest import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

JOBS = 3
OUTAGE_SECONDS = 6.0
SWEEP_EVERY = 0.5
GRACE_SECONDS = 3.0
POLL_SECONDS = 0.2


@pytest.fixture
def sandbox():
    """A sandbox of our own whose jobs run long enough to be polled a few times each."""
    with run_sandbox(job_seconds=2.0) as server:
        yield server


def sweep_for(seconds: float, *, until=lambda: False) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not until():
        tasks.sweep_stale_jobs(grace_seconds=GRACE_SECONDS)
        time.sleep(SWEEP_EVERY)


def most_attempts_of_one_chain(seconds: float) -> int:
    """How many submits one chain can make in ``seconds``, each back-off at its shortest."""
    attempts, elapsed = 1, 0.0
    while True:
        elapsed += min(RETRY_CAP, RETRY_BASE * 2 ** (attempts - 1)) * 0.5
        if elapsed > seconds:
            return attempts
        attempts += 1


def redeliver_the_next_message_twice() -> None:
    """Publish two more copies of each job's next poll message, as a broker redelivery would."""
    for pk, token in Job.objects.exclude(chain_token="").values_list("pk", "chain_token"):
        for _copy in range(2):
            tasks.poll_job.apply_async((pk,), {"token": token})


def overlapping(requests) -> int:
    spans = sorted((r.received_at, r.answered_at or float("inf")) for r in requests)
    return sum(1 for before, after in itertools.pairwise(spans) if after[0] < before[1])


def test_an_outage_with_a_busy_sweep_keeps_one_chain_per_job(
    sandbox, media_root, redis_celery, start_worker, settings
):
    settings.NEURALDRAFT = {**settings.NEURALDRAFT, "MAX_RETRIES": 0}
    sandbox.set_fault("status", status=503, method="POST", path="/v1/images")
    sandbox.set_fault("latency", seconds=POLL_SECONDS, method="GET", path="/v1/jobs/")
    worker = start_worker(concurrency=4)
    started = time.monotonic()
    jobs = [
        services.request_generation(f"outage.key-{number}", prompt=f"Picture {number}")
        for number in range(JOBS)
    ]

    sweep_for(OUTAGE_SECONDS)
    outage = time.monotonic() - started
    sandbox.clear_faults()
    sandbox.set_fault("latency", seconds=POLL_SECONDS, method="GET", path="/v1/jobs/")
    wait_for(
        lambda: Job.objects.filter(remote_id__isnull=False).count() == JOBS,
        timeout=30,
        describe="every job to be sent",
        workers=(worker,),
    )
    redeliver_the_next_message_twice()

    def bound_jobs() -> int:
        return Job.objects.filter(status=JobStatus.COMPLETED, image_version__isnull=False).count()

    sweep_for(60, until=lambda: bound_jobs() == JOBS)
    assert bound_jobs() == JOBS, worker.describe()

    posts: dict[str, int] = defaultdict(int)
    for request in sandbox.requests:
        if request.method == "POST" and request.path == "/v1/images":
            posts[request.headers["Idempotency-Key"]] += 1
    bound = most_attempts_of_one_chain(outage) + 1
    per_job = [posts[job.idempotency_key] for job in jobs]
    assert max(per_job) <= bound, f"POSTs per job {per_job}, one chain makes at most {bound}"
    assert len(sandbox.jobs) == JOBS

    for job in Job.objects.all():
        polls = sandbox.assert_called("GET", f"/v1/jobs/{job.remote_id}")
        assert overlapping(polls) == 0, f"job {job.pk}: {len(polls)} polls, some at once"

"""Celery tasks that follow each job: thin wrappers around ``services``.

Each task takes a primary key, re-reads the row and is safe to run twice
(``acks_late``: a message redelivered after a crash must not do harm). A job
that is waiting never holds a worker: the next poll is a new message with a
countdown, not a sleep.
"""

from __future__ import annotations

import logging
import random
from datetime import timedelta

from celery import Task, shared_task
from django.utils import timezone

from . import renditions, services
from .choices import JobStatus
from .exceptions import NeuralDraftError, RateLimitedError
from .models import ImageVersion, Job

logger = logging.getLogger(__name__)

#: A poll message that arrives this much before the job's ``next_poll_at`` is a
#: duplicate (a requeue by the sweep, a redelivery) and is dropped, so one job
#: never has two poll chains.
_EARLY_POLL_TOLERANCE = timedelta(seconds=1)


def _retry_delay(err: Exception, retries: int) -> float:
    if isinstance(err, RateLimitedError) and err.retry_after:
        return float(err.retry_after)
    return min(60.0, 2.0**retries) * random.uniform(0.5, 1.0)


@shared_task(name="neuraldraft.submit_generation", bind=True, acks_late=True, max_retries=None)
def submit_generation(self: Task, job_pk: int) -> None:
    job = Job.objects.filter(pk=job_pk).first()
    if job is None:
        return
    try:
        job = services.submit(job)
    except services.TRANSIENT_ERRORS as err:
        if not services.give_up_if_overdue(job):
            raise self.retry(exc=err, countdown=_retry_delay(err, self.request.retries)) from err
        return
    if job.remote_id and not job.is_terminal:
        _schedule_poll(job)


def _schedule_poll(job: Job) -> None:
    now = timezone.now()
    countdown = max(0.0, ((job.next_poll_at or now) - now).total_seconds())
    poll_job.apply_async((job.pk,), countdown=countdown)


@shared_task(name="neuraldraft.poll_job", acks_late=True)
def poll_job(job_pk: int) -> None:
    job = Job.objects.filter(pk=job_pk, remote_id__isnull=False).first()
    if job is None:
        return
    if (
        not job.is_terminal
        and job.next_poll_at
        and (job.next_poll_at > timezone.now() + _EARLY_POLL_TOLERANCE)
    ):
        return
    outcome = services.poll_once(job)
    if outcome.next_poll_in is not None:
        poll_job.apply_async((job.pk,), countdown=outcome.next_poll_in)


@shared_task(name="neuraldraft.ingest_job", bind=True, acks_late=True, max_retries=5)
def ingest_job(self: Task, job_pk: int) -> None:
    job = Job.objects.filter(pk=job_pk).first()
    if job is None or job.status != JobStatus.COMPLETED:
        return
    try:
        services.ingest(job)
    except services.TRANSIENT_ERRORS as err:
        raise self.retry(exc=err, countdown=_retry_delay(err, self.request.retries)) from err
    except NeuralDraftError:
        logger.warning("The image of job %s was rejected.", job.remote_id, exc_info=True)


@shared_task(
    name=renditions.TASK_NAME,
    bind=True,
    acks_late=True,
    max_retries=3,
    soft_time_limit=120,
    time_limit=180,
)
def make_renditions(self: Task, version_pk: int) -> None:
    """Make a version's renditions; queued by ``renditions.schedule`` when the version commits.

    What escapes ``make_for`` is the storage or the database failing, which
    may pass, so it is retried a few times; after that the version keeps its
    original only until ``neuraldraft_renditions --missing`` runs.
    """
    version = ImageVersion.objects.filter(pk=version_pk).first()
    if version is None:
        return
    try:
        renditions.make_for(version)
    except Exception as err:
        raise self.retry(exc=err, countdown=_retry_delay(err, self.request.retries)) from err


@shared_task(name="neuraldraft.sweep_stale_jobs")
def sweep_stale_jobs(grace_seconds: float = 60.0) -> dict[str, int]:
    """Requeue jobs whose task was lost (a worker killed mid-download, a lost message).

    Meant for celery beat, every minute or so. Work younger than
    ``grace_seconds`` is left to the task that should still be on it; a task
    requeued while the original is alive does no harm, as every task is safe
    to run twice.
    """
    before = timezone.now() - timedelta(seconds=grace_seconds)
    requeued = {
        "submit": list(Job.objects.unsubmitted(before=before).values_list("pk", flat=True)),
        "poll": list(Job.objects.overdue_polls(before=before).values_list("pk", flat=True)),
        "ingest": list(Job.objects.awaiting_ingest(before=before).values_list("pk", flat=True)),
    }
    for pk in requeued["submit"]:
        submit_generation.delay(pk)
    for pk in requeued["poll"]:
        poll_job.delay(pk)
    for pk in requeued["ingest"]:
        ingest_job.delay(pk)
    if any(requeued.values()):
        logger.warning("Requeued stale Neural Draft jobs: %s", requeued)
    return {name: len(pks) for name, pks in requeued.items()}

"""Celery tasks that follow each job: thin wrappers around ``services``.

Each task takes a primary key and the chain token of its message, claims the
job (a duplicate, redelivered or superseded message is dropped there, see
:mod:`django_neuraldraft.services.chains`), lets
:func:`~django_neuraldraft.services.poll_once` take one step and sends the one
next message the outcome asks for. A job that is waiting never holds a worker:
the next step is a new message with a countdown, not a sleep.
"""

from __future__ import annotations

import logging

from celery import Task, shared_task

from . import renditions, services
from .models import ImageVersion, Job
from .services import chains
from .services.backoff import retry_delay

logger = logging.getLogger(__name__)


def _step(job_pk: int, token: str | None) -> None:
    job = chains.claim(job_pk, token)
    if job is None:
        logger.debug("Dropped a stale task message for job %s.", job_pk)
        return
    running = job.chain_token
    outcome = services.poll_once(job)
    if outcome.next_poll_in is None:
        chains.end(job_pk, running)
        return
    token = chains.pass_on(job_pk, running, outcome.next_poll_in)
    if token is not None:
        _send(outcome.job, token, countdown=outcome.next_poll_in)


def _send(job: Job, token: str, *, countdown: float = 0.0) -> None:
    task = _TASKS[chains.step_for(job)]
    task.apply_async((job.pk,), {"token": token}, countdown=countdown)


@shared_task(name="neuraldraft.submit_generation", acks_late=True)
def submit_generation(job_pk: int, token: str | None = None) -> None:
    _step(job_pk, token)


@shared_task(name="neuraldraft.poll_job", acks_late=True)
def poll_job(job_pk: int, token: str | None = None) -> None:
    _step(job_pk, token)


@shared_task(name="neuraldraft.ingest_job", acks_late=True)
def ingest_job(job_pk: int, token: str | None = None) -> None:
    _step(job_pk, token)


_TASKS = {"submit": submit_generation, "poll": poll_job, "ingest": ingest_job}


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
        raise self.retry(exc=err, countdown=retry_delay(self.request.retries + 1)) from err


@shared_task(name="neuraldraft.sweep_stale_jobs")
def sweep_stale_jobs(grace_seconds: float = 60.0) -> dict[str, int]:
    """Restart the chain of every job whose chain is overdue by ``grace_seconds``.

    Meant for celery beat, every minute or so: it finds jobs whose task was
    lost (a worker killed mid-download, a lost message). A chain that is only
    late is retired by the restart, never doubled, so the sweep may run as
    often as wanted: each job keeps one chain.
    """
    restarted = {"submit": 0, "poll": 0, "ingest": 0}
    for job, token in chains.restart_overdue(grace_seconds=grace_seconds):
        restarted[chains.step_for(job)] += 1
        _send(job, token)
    if any(restarted.values()):
        logger.warning("Restarted stale Neural Draft job chains: %s", restarted)
    return restarted


@shared_task(name="neuraldraft.process_webhook", bind=True, acks_late=True, max_retries=5)
def process_webhook(self: Task, event_pk: int) -> None:
    """Follow the job a verified delivery names, once; the job's own chain goes on as before.

    The chain's next message (a slow safety net while webhooks are on) finds
    the job bound and ends, or polls it again if it still runs.
    """
    from . import webhooks

    try:
        webhooks.process(event_pk)
    except services.TRANSIENT_ERRORS as err:
        retry_after = getattr(err, "retry_after", None)
        raise self.retry(
            exc=err, countdown=retry_delay(self.request.retries + 1, retry_after)
        ) from err

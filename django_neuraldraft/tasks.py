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
from .models import Job
from .services import chains, rendition_chain
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
    acks_late=True,
    soft_time_limit=rendition_chain.STEP_TIME_LIMIT - 60,
    time_limit=rendition_chain.STEP_TIME_LIMIT,
)
def make_renditions(version_pk: int, token: str | None = None, below: int | None = None) -> None:
    """Make a step of a version's renditions; the first is queued by ``renditions.schedule``.

    Each step sends the next itself (``rendition_chain.run_step``), retries
    included, and the sweep requeues a lost one, so Celery's own retries are
    not used: they would copy the message and its token.
    """
    rendition_chain.run_step(version_pk, token, below)


@shared_task(name="neuraldraft.sweep_stale_jobs")
def sweep_stale_jobs(grace_seconds: float = 60.0) -> dict[str, int]:
    """Restart every job's chain, and every version's renditions, overdue by ``grace_seconds``.

    Meant for celery beat, every minute or so: it finds jobs whose task was
    lost (a worker killed mid-download, a lost message), and versions whose
    renditions task was (``rendition_chain.requeue_overdue``). A chain that
    is only late is retired by the restart, never doubled, so the sweep may
    run as often as wanted: each job and each version keeps one chain.
    """
    restarted = {"submit": 0, "poll": 0, "ingest": 0}
    for job, token in chains.restart_overdue(grace_seconds=grace_seconds):
        restarted[chains.step_for(job)] += 1
        _send(job, token)
    restarted["renditions"] = rendition_chain.requeue_overdue(grace_seconds=grace_seconds)
    if any(restarted.values()):
        logger.warning("Restarted stale Neural Draft job chains: %s", restarted)
    return restarted


@shared_task(name="neuraldraft.process_webhook", bind=True, acks_late=True, max_retries=5)
def process_webhook(self: Task, event_pk: int) -> None:
    """Follow the job a verified delivery names, once; the job's own chain goes on as before.

    The chain's next message (a slow safety net while webhooks are on) finds
    the job bound and ends, or polls it again if it still runs. A refresh or
    download that failed for now is retried here, with backoff, rather than
    left to that safety net.
    """
    from . import webhooks

    try:
        webhooks.process(event_pk)
    except webhooks.RETRY_LATER as err:
        retry_after = getattr(err, "retry_after", None)
        raise self.retry(
            exc=err, countdown=retry_delay(self.request.retries + 1, retry_after)
        ) from err

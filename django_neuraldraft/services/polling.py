"""Following a submitted job to its end: polls, their schedule, time-outs, failure, cancel."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from .. import conf
from ..choices import JobStatus, JobType
from ..exceptions import ConflictError, NeuralDraftError, RateLimitedError
from ..models import ImageVersion, Job
from ..poll_schedule import PollState, next_poll_delay
from .ingest import ingest
from .jobs import fail, mirror
from .remote import TRANSIENT_ERRORS, get_client

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PollOutcome:
    """What one poll of a job found, and what its caller should do next.

    ``next_poll_in`` is the delay in seconds before the next poll, or ``None``
    when the job needs no more polls (it ended, or its image is bound).
    ``version`` is the image this poll bound, if it bound one.
    """

    job: Job
    next_poll_in: float | None
    version: ImageVersion | None = None


def poll_once(job: Job) -> PollOutcome:
    """Poll ``job`` once, mirror what Neural Draft says and ingest a finished image.

    The one entry point for following a job: Celery tasks, the admin's
    Refresh button, commands and webhooks call it and only act on its outcome.
    """
    job.refresh_from_db()
    if job.is_terminal:
        return _after_terminal(job)
    if give_up_if_overdue(job):
        return PollOutcome(job, None)
    previous_progress = job.progress
    try:
        job = refresh_job(job)
    except RateLimitedError as err:
        logger.info("Polling job %s is rate limited: %s", job.remote_id, err)
        delay = err.retry_after or schedule_next_poll(job, previous_progress)
        postpone_poll(job, delay)
        return PollOutcome(job, delay)
    except TRANSIENT_ERRORS as err:
        logger.info("Polling job %s failed for now: %s", job.remote_id, err)
        return PollOutcome(job, schedule_next_poll(job, previous_progress))
    if job.is_terminal:
        return _after_terminal(job)
    return PollOutcome(job, schedule_next_poll(job, previous_progress))


def _after_terminal(job: Job) -> PollOutcome:
    if job.status != JobStatus.COMPLETED or job.type != JobType.IMAGE_GENERATE:
        return PollOutcome(job, None)
    if job.image_key_id is None:
        return PollOutcome(job, None)
    try:
        version = ingest(job)
    except TRANSIENT_ERRORS as err:
        logger.info("Downloading the image of job %s failed for now: %s", job.remote_id, err)
        return PollOutcome(job, schedule_next_poll(job, job.progress))
    except NeuralDraftError:
        logger.warning("The image of job %s was rejected.", job.remote_id, exc_info=True)
        job.refresh_from_db()
        return PollOutcome(job, None)
    return PollOutcome(job, None, version)


def refresh_job(job: Job) -> Job:
    """Fetch the job from Neural Draft and mirror it; state only ever moves forward."""
    if job.remote_id is None:
        raise ValueError(f"Job {job.pk} was never submitted; there is nothing to refresh.")
    remote = get_client().get_job(job.remote_id)
    Job.objects.filter(pk=job.pk).update(last_polled_at=timezone.now(), polls=F("polls") + 1)
    job.polls += 1
    mirror(job, remote)
    return job


def schedule_next_poll(job: Job, previous_progress: int | None = None) -> float:
    """Record when ``job`` should be polled next and return the delay in seconds.

    The delay comes from :func:`~django_neuraldraft.poll_schedule.next_poll_delay`,
    the one place that decides how often a job is polled.
    """
    initial, longest = conf.poll_schedule()
    now = timezone.now()
    state = PollState(
        polls=job.polls,
        elapsed=(now - job.created_at).total_seconds(),
        progress=job.progress,
        previous_progress=previous_progress,
    )
    delay = next_poll_delay(state, initial=initial, longest=longest)
    postpone_poll(job, delay)
    return delay


def postpone_poll(job: Job, seconds: float) -> None:
    """Move the next poll of ``job`` out by ``seconds``, e.g. to honour a ``Retry-After``."""
    job.next_poll_at = timezone.now() + timedelta(seconds=seconds)
    Job.objects.filter(pk=job.pk).update(next_poll_at=job.next_poll_at)


def give_up_if_overdue(job: Job) -> bool:
    """Fail ``job`` if it has run longer than ``JOB_TIMEOUT``; return whether it did."""
    limit = conf.job_timeout()
    if timezone.now() - job.created_at <= timedelta(seconds=limit):
        return False
    fail(
        job,
        "timed_out",
        _("Gave up after %(seconds)d seconds without a result.") % {"seconds": limit},
    )
    return True


def cancel(job: Job) -> Job:
    """Cancel ``job`` at Neural Draft if it was sent, locally if not; a finished job stays."""
    job.refresh_from_db()
    if job.is_terminal:
        return job
    if not job.remote_id:
        Job.objects.advance(job.pk, JobStatus.CANCELLED, finished_at=timezone.now())
        job.refresh_from_db()
        return job
    try:
        remote = get_client().cancel_job(job.remote_id)
    except ConflictError:
        return refresh_job(job)
    mirror(job, remote)
    return job

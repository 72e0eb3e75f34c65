"""Following a job to its end: submit, polls, their schedule, time-outs, failure, cancel.

:func:`poll_once` is the one entry point: it owns a step of a job and its
outcome (next delay, ingest, done, failed), so tasks, commands, the admin and
webhooks only act on the :class:`PollOutcome` it returns.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from .. import conf
from ..choices import JobStatus, JobType
from ..client import DOWNLOAD_SECONDS
from ..exceptions import ConflictError, NeuralDraftError, RateLimitedError
from ..models import ImageVersion, Job
from ..poll_schedule import PollState, next_poll_delay
from .backoff import retry_delay, server_wait
from .generation import submit
from .ingest import ingest
from .jobs import fail, mirror, note_failure, permanent_error_code, reject_result
from .remote import TRANSIENT_ERRORS, get_client

logger = logging.getLogger(__name__)

#: Past JOB_TIMEOUT a job is failed at its next step; this margin makes sure
#: that step comes after the deadline, not a moment before it.
_DEADLINE_MARGIN = 1.0


@dataclass(frozen=True)
class PollOutcome:
    """What one step of a job found, and what its caller should do next.

    ``next_poll_in`` is the delay in seconds before the next step, or ``None``
    when the job needs no more (it ended, or its image is bound).
    ``version`` is the image this step bound, if it bound one.
    """

    job: Job
    next_poll_in: float | None
    version: ImageVersion | None = None


def poll_once(job: Job) -> PollOutcome:
    """Take ``job`` one step further and say when the next step is due.

    The step depends on where the job is: an unsent job is sent (a transient
    error is retried with back-off), a sent one is polled and mirrored (or
    cancelled at Neural Draft if a cancel is pending), a completed one has its
    image ingested. ``JOB_TIMEOUT`` is checked before any remote call, a call
    refused for good (404, 401/403, a malformed answer) fails the job with an
    ``error_code``, and a transient failure is recorded in ``last_error``.
    Never raises for what Neural Draft or the image does; the next delay is
    never later than the job's deadline.
    """
    job.refresh_from_db()
    if job.is_terminal:
        return _within_deadline(_after_terminal(job))
    if give_up_if_overdue(job):
        return PollOutcome(job, None)
    if not job.remote_id:
        return _within_deadline(_submit_step(job))
    if job.cancel_requested_at is not None:
        return _within_deadline(_cancel_step(job))
    previous_progress, previous_polled_at = job.progress, job.last_polled_at
    try:
        job = refresh_job(job)
    except RateLimitedError as err:
        logger.info("Polling job %s is rate limited: %s", job.remote_id, err)
        note_failure(job, err)
        delay = server_wait(err.retry_after) or schedule_next_poll(job, previous_progress)
        postpone_poll(job, delay)
        return _within_deadline(PollOutcome(job, delay))
    except TRANSIENT_ERRORS as err:
        logger.info("Polling job %s failed for now: %s", job.remote_id, err)
        note_failure(job, err)
        return _within_deadline(PollOutcome(job, schedule_next_poll(job, previous_progress)))
    except NeuralDraftError as err:
        logger.warning("Polling job %s was refused for good: %s", job.remote_id, err)
        fail(job, permanent_error_code(err, "poll_failed"), str(err))
        return PollOutcome(job, None)
    if job.is_terminal:
        return _within_deadline(_after_terminal(job))
    return _within_deadline(
        PollOutcome(job, schedule_next_poll(job, previous_progress, previous_polled_at))
    )


def _submit_step(job: Job) -> PollOutcome:
    try:
        job = submit(job)
    except TRANSIENT_ERRORS as err:
        logger.info("Sending job %s failed for now: %s", job.pk, err)
        return PollOutcome(job, retry_delay(job.failed_attempts, _retry_after(err)))
    if job.is_terminal or not job.remote_id:
        return PollOutcome(job, None)
    if job.cancel_requested_at is not None:
        return _cancel_step(job)
    return PollOutcome(job, _seconds_until(job.next_poll_at))


def _cancel_step(job: Job) -> PollOutcome:
    try:
        job = cancel_remote(job)
    except TRANSIENT_ERRORS as err:
        logger.info("Cancelling job %s failed for now: %s", job.remote_id, err)
        note_failure(job, err)
        return PollOutcome(job, retry_delay(job.failed_attempts, _retry_after(err)))
    except NeuralDraftError as err:
        logger.warning("Cancelling job %s was refused: %s", job.remote_id, err)
        fail(job, permanent_error_code(err, "cancel_failed"), str(err))
        return PollOutcome(job, None)
    if job.is_terminal:
        return _after_terminal(job)
    return PollOutcome(job, schedule_next_poll(job, job.progress))


def _after_terminal(job: Job) -> PollOutcome:
    if job.status != JobStatus.COMPLETED or job.type != JobType.IMAGE_GENERATE:
        return PollOutcome(job, None)
    if job.image_key_id is None:
        return PollOutcome(job, None)
    time_left = _seconds_until(_deadline(job))
    if time_left <= 0 and not _has_version(job):
        reject_result(job, "timed_out", _timeout_message())
        return PollOutcome(job, None)
    try:
        version = ingest(job, max_seconds=min(DOWNLOAD_SECONDS, time_left))
    except TRANSIENT_ERRORS as err:
        logger.info("Downloading the image of job %s failed for now: %s", job.remote_id, err)
        note_failure(job, err)
        if _overdue(job):
            reject_result(job, "timed_out", _timeout_message())
            return PollOutcome(job, None)
        return PollOutcome(job, retry_delay(job.failed_attempts, _retry_after(err)))
    except Exception:
        # ingest() has failed the job with a code (or found it bound meanwhile).
        logger.warning("The image of job %s was not kept.", job.remote_id, exc_info=True)
        job.refresh_from_db()
        if job.status == JobStatus.COMPLETED and not _has_version(job):
            return PollOutcome(job, retry_delay(job.failed_attempts + 1))
        return PollOutcome(job, None)
    return PollOutcome(job, None, version)


def _has_version(job: Job) -> bool:
    return ImageVersion.objects.filter(job=job).exists()


def _retry_after(err: Exception) -> float | None:
    return err.retry_after if isinstance(err, RateLimitedError) else None


def _seconds_until(moment: datetime | None) -> float:
    if moment is None:
        return 0.0
    return max(0.0, (moment - timezone.now()).total_seconds())


def _deadline(job: Job) -> datetime:
    return job.created_at + timedelta(seconds=conf.job_timeout())


def _overdue(job: Job) -> bool:
    return timezone.now() > _deadline(job)


def _within_deadline(outcome: PollOutcome) -> PollOutcome:
    """Never schedule the next step of a job later than its deadline.

    A completed job whose image is still to be ingested counts too: a CDN's
    ``Retry-After`` must not keep it waiting past the deadline, where its next
    step fails it with ``timed_out``.
    """
    job = outcome.job
    if outcome.next_poll_in is None:
        return outcome
    latest = _seconds_until(_deadline(job)) + _DEADLINE_MARGIN
    if outcome.next_poll_in <= latest:
        return outcome
    if job.remote_id and not job.is_terminal:
        postpone_poll(job, latest)
    return replace(outcome, next_poll_in=latest)


def refresh_job(job: Job) -> Job:
    """Fetch the job from Neural Draft and mirror it; state only ever moves forward."""
    if job.remote_id is None:
        raise ValueError(f"Job {job.pk} was never submitted; there is nothing to refresh.")
    remote = get_client().get_job(job.remote_id)
    Job.objects.filter(pk=job.pk).update(last_polled_at=timezone.now(), polls=F("polls") + 1)
    job.polls += 1
    mirror(job, remote)
    return job


def schedule_next_poll(
    job: Job, previous_progress: int | None = None, previous_polled_at: datetime | None = None
) -> float:
    """Record when ``job`` should be polled next and return the delay in seconds.

    The delay comes from :func:`~django_neuraldraft.poll_schedule.next_poll_delay`,
    the one place that decides how often a job is polled; ``previous_progress``
    and ``previous_polled_at`` are the poll before this one, which give its pace.
    """
    initial, longest = conf.poll_schedule()
    now = timezone.now()
    if previous_polled_at is None and job.remote_created_at is not None:
        # Before the first poll, what we know is the job created at 0 %, on the API's clock.
        previous_polled_at = min(max(job.remote_created_at, job.created_at), now)
    state = PollState(
        polls=job.polls,
        elapsed=(now - job.created_at).total_seconds(),
        progress=job.progress,
        previous_progress=previous_progress,
        previous_elapsed=(
            (previous_polled_at - job.created_at).total_seconds() if previous_polled_at else None
        ),
    )
    delay = next_poll_delay(
        state, initial=initial, longest=longest, safety_net=conf.webhook_safety_poll()
    )
    postpone_poll(job, delay)
    return delay


def postpone_poll(job: Job, seconds: float) -> None:
    """Move the next poll of ``job`` out by ``seconds``, e.g. to honour a ``Retry-After``."""
    job.next_poll_at = timezone.now() + timedelta(seconds=seconds)
    Job.objects.filter(pk=job.pk).update(next_poll_at=job.next_poll_at)


def _timeout_message() -> str:
    return _("Gave up after %(seconds)d seconds without a result.") % {
        "seconds": conf.job_timeout()
    }


def give_up_if_overdue(job: Job) -> bool:
    """Fail ``job`` if it has run longer than ``JOB_TIMEOUT``; return whether it did."""
    if not _overdue(job):
        return False
    fail(job, "timed_out", _timeout_message())
    return True


def cancel(job: Job) -> Job:
    """Cancel ``job``; a finished job stays as it is.

    A job never sent is cancelled locally, and no submit can send it after
    that. A job that is being sent, or was sent without an answer yet, cannot
    be cancelled safely before its remote id is known: the cancel is recorded
    (``cancel_requested_at``, the job stays in flight) and whoever learns the
    id cancels the remote job, so nothing runs on, billed, behind a local
    ``cancelled``. A sent job is cancelled at Neural Draft; if that call fails
    for now, the job's next step tries again.
    """
    job.refresh_from_db()
    if job.is_terminal:
        return job
    if not job.remote_id:
        if Job.objects.cancel_unsent(job.pk):
            job.refresh_from_db()
            return job
        if Job.objects.request_cancel(job.pk, unsent_only=True):
            logger.info("Job %s is being sent; it will be cancelled once sent.", job.pk)
            job.refresh_from_db()
            return job
        job.refresh_from_db()
        if job.is_terminal or not job.remote_id:
            return job
    Job.objects.request_cancel(job.pk)
    return cancel_remote(job)


def cancel_remote(job: Job) -> Job:
    """Ask Neural Draft to cancel the sent ``job`` and mirror its answer."""
    if job.remote_id is None:
        raise ValueError(f"Job {job.pk} was never submitted; there is nothing to cancel remotely.")
    try:
        remote = get_client().cancel_job(job.remote_id)
    except ConflictError:
        remote = None
    Job.objects.filter(pk=job.pk).update(cancel_requested_at=None)
    if remote is None:
        return refresh_job(job)
    mirror(job, remote)
    return job

"""Following a submitted job to its end: polls, their schedule, time-outs, failure, cancel."""

from __future__ import annotations

import logging
import random
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from .. import conf
from ..choices import JobStatus, JobType
from ..client import Job as RemoteJob
from ..exceptions import ConflictError
from ..models import Job
from ..signals import job_failed
from .remote import get_client

logger = logging.getLogger(__name__)


def refresh_job(job: Job) -> Job:
    """Fetch the job from Neural Draft and mirror it; state only ever moves forward."""
    remote = get_client().get_job(job.remote_id)
    Job.objects.filter(pk=job.pk).update(last_polled_at=timezone.now(), polls=F("polls") + 1)
    job.polls += 1
    mirror(job, remote)
    return job


def mirror(job: Job, remote: RemoteJob, **extra: Any) -> None:
    fields: dict[str, Any] = {
        "type": remote.type,
        "progress": remote.progress if remote.progress is not None else job.progress,
        "message": remote.message or "",
        "steps": [
            {"name": step.name, "completed": step.completed, "active": step.active}
            for step in remote.steps
        ],
        "result": dict(remote.result) if remote.result is not None else None,
        "raw": dict(remote.raw),
        "remote_created_at": remote.created_at,
        "remote_updated_at": remote.updated_at,
        **extra,
    }
    status = remote.status
    if remote.error is not None:
        fields.update(error_code=remote.error.code, error_message=remote.error.message)
    if status == JobStatus.COMPLETED and remote.type == JobType.IMAGE_GENERATE:
        url = (remote.result or {}).get("url")
        if not isinstance(url, str) or not url:
            status = JobStatus.FAILED
            fields.update(
                error_code="missing_result",
                error_message=_("Neural Draft reported the job completed but gave no image URL."),
            )
    if status in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED):
        fields["finished_at"] = timezone.now()
        fields["next_poll_at"] = None
    moved = Job.objects.advance(job.pk, status, **fields)
    job.refresh_from_db()
    if moved and job.status == JobStatus.FAILED:
        announce_failure(job)


def fail(job: Job, code: str, message: str) -> None:
    """Mark an unfinished job failed locally, e.g. after giving up on it."""
    if Job.objects.advance(
        job.pk,
        JobStatus.FAILED,
        error_code=code,
        error_message=message,
        finished_at=timezone.now(),
        next_poll_at=None,
    ):
        job.refresh_from_db()
        announce_failure(job)


def announce_failure(job: Job) -> None:
    logger.warning(
        "Neural Draft job %s failed: %s %s",
        job.remote_id or job.pk,
        job.error_code,
        job.error_message,
    )
    transaction.on_commit(lambda: job_failed.send(sender=Job, job=job))


def schedule_next_poll(job: Job) -> float:
    """Record when ``job`` should be polled next and return the delay in seconds.

    The delay grows by half with each poll, from ``POLL_INITIAL`` to
    ``POLL_MAX``, with ±20% jitter so that jobs submitted together do not
    poll together forever.
    """
    initial, longest = conf.poll_schedule()
    delay = min(longest, initial * 1.5 ** max(job.polls - 1, 0)) * random.uniform(0.8, 1.2)
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

"""What happens to a local Job when Neural Draft describes it or we give up on it.

Every change of a job's status goes through here and, below it, through the
conditional UPDATE of :meth:`JobQuerySet.advance`, so a job only moves forward.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from ..choices import JobStatus, JobType
from ..client import Job as RemoteJob
from ..models import Job
from ..signals import job_failed

logger = logging.getLogger(__name__)


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

"""What happens to a local Job when Neural Draft describes it, a call fails, or we give up on it.

Every change of a job's status goes through here and, below it, through the
conditional UPDATEs of :class:`~django_neuraldraft.managers.JobQuerySet`, so
a job only moves forward (the one step back, a completed job whose image we
refuse, is :func:`reject_result`). Everything taken from a remote answer is
normalised here before it reaches a column: the lifecycle is documented in
``docs/lifecycle.rst``.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from django.db import connection
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from .. import limits
from ..choices import JobStatus, JobType
from ..client import Job as RemoteJob
from ..exceptions import (
    AuthenticationError,
    MalformedResponseError,
    NeuralDraftError,
    NotFoundError,
    PermissionDeniedError,
)
from ..models import Job
from ..signals import job_failed
from .announce import send_on_commit
from .remote import clean_text

logger = logging.getLogger(__name__)

#: A remote job id as the API documents it (``job_…``), short enough for its column.
_REMOTE_ID = re.compile(rf"job_[A-Za-z0-9_-]{{1,{limits.REMOTE_ID_MAX_LENGTH - 4}}}")

_KNOWN_STATUSES = frozenset(JobStatus.values)
_KNOWN_TYPES = frozenset(JobType.values)


def valid_remote_id(value: Any) -> bool:
    return isinstance(value, str) and _REMOTE_ID.fullmatch(value) is not None


def _code(code: Any) -> str:
    return clean_text(code, limits.ERROR_CODE_MAX_LENGTH)


def _message(message: Any) -> str:
    return clean_text(message, limits.ERROR_MESSAGE_MAX_LENGTH)


def _storable(value: Any) -> Any:
    """JSON from the network as the database can hold it.

    PostgreSQL's ``jsonb`` refuses NUL characters, so there they are stored as
    the visible text ``\\u0000``. They are escaped rather than dropped: dropping
    them could turn a refused URL (``http://127.0.0.1/x\\x00.cdn.example``) into
    one that passes, and the backslash keeps it refused (``docs/security.rst``).
    Elsewhere the JSON is kept exactly as received.
    """
    if connection.vendor != "postgresql":
        return value
    if isinstance(value, str):
        return value.replace("\x00", "\\u0000")
    if isinstance(value, dict):
        return {_storable(key): _storable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_storable(item) for item in value]
    return value


def _progress(value: int | None, previous: int) -> int:
    return previous if value is None else max(0, min(100, value))


def mirror(job: Job, remote: RemoteJob, **extra: Any) -> None:
    """Copy what Neural Draft says of ``job`` onto its row, normalised, and move its status.

    An unknown status (``queued``, ``expired``…) counts as ``processing``;
    the answer as received stays in ``raw``. A successful answer clears
    ``last_error``. Raises :class:`MalformedResponseError` when the answer is
    about another job.
    """
    if job.remote_id and remote.id != job.remote_id:
        raise MalformedResponseError(
            f"Asked for job {job.remote_id}, Neural Draft answered about {remote.id!r:.80}."
        )
    fields: dict[str, Any] = {
        "type": remote.type if remote.type in _KNOWN_TYPES else job.type,
        "progress": _progress(remote.progress, job.progress),
        "message": clean_text(remote.message, limits.JOB_MESSAGE_MAX_LENGTH),
        "steps": [
            {
                "name": clean_text(step.name, limits.STEP_NAME_MAX_LENGTH),
                "completed": step.completed,
                "active": step.active,
            }
            for step in remote.steps[: limits.MAX_STEPS]
        ],
        "result": _storable(dict(remote.result)) if remote.result is not None else None,
        "raw": _storable(dict(remote.raw)),
        "remote_created_at": remote.created_at,
        "remote_updated_at": remote.updated_at,
        "last_error": "",
        "last_error_at": None,
        "failed_attempts": 0,
        **extra,
    }
    status = remote.status if remote.status in _KNOWN_STATUSES else JobStatus.PROCESSING
    if remote.error is not None:
        fields.update(
            error_code=_code(remote.error.code), error_message=_message(remote.error.message)
        )
    if status == JobStatus.COMPLETED and fields["type"] == JobType.IMAGE_GENERATE:
        problem = _result_problem(remote.result)
        if problem:
            status = JobStatus.FAILED
            fields.update(error_code=problem[0], error_message=problem[1])
    if status in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED):
        fields["finished_at"] = timezone.now()
        fields["next_poll_at"] = None
    moved = Job.objects.advance(job.pk, status, **fields)
    job.refresh_from_db()
    if moved and job.status == JobStatus.FAILED:
        announce_failure(job)


def _result_problem(result: Any) -> tuple[str, str] | None:
    url = (result or {}).get("url")
    if not isinstance(url, str) or not url:
        return "missing_result", _(
            "Neural Draft reported the job completed but gave no image URL."
        )
    # ImageVersion.source_url may drop the query (a signed URL's token); the rest must fit.
    if len(url.split("?", 1)[0]) > limits.SOURCE_URL_MAX_LENGTH:
        return "invalid_result", _(
            "Neural Draft gave an image URL of %(length)d characters; at most %(limit)d are kept."
        ) % {"length": len(url), "limit": limits.SOURCE_URL_MAX_LENGTH}
    return None


def fail(job: Job, code: str, message: str) -> None:
    """Mark an unfinished job failed locally, e.g. after giving up on it."""
    if Job.objects.advance(
        job.pk,
        JobStatus.FAILED,
        error_code=_code(code),
        error_message=_message(message),
        finished_at=timezone.now(),
        next_poll_at=None,
    ):
        job.refresh_from_db()
        announce_failure(job)


def reject_result(job: Job, code: str, message: str) -> bool:
    """Fail a completed job whose image cannot be kept: the documented completed -> failed step."""
    if Job.objects.reject_result(
        job.pk, error_code=_code(code), error_message=_message(message), next_poll_at=None
    ):
        job.refresh_from_db()
        announce_failure(job)
        return True
    job.refresh_from_db()
    return False


def note_failure(job: Job, err: Exception) -> None:
    """Record on ``job`` why a call for it failed and will be tried again: ``last_error``."""
    Job.objects.filter(pk=job.pk).update(
        last_error=_message(f"{type(err).__name__}: {err}"),
        last_error_at=timezone.now(),
        failed_attempts=F("failed_attempts") + 1,
    )
    job.refresh_from_db(fields=["last_error", "last_error_at", "failed_attempts"])


#: The ``error_code`` of a job that failed because a call for it was refused for good.
_PERMANENT_CODES = (
    (NotFoundError, "remote_not_found"),
    (AuthenticationError, "unauthorized"),
    (PermissionDeniedError, "forbidden"),
    (MalformedResponseError, "malformed_response"),
)


def permanent_error_code(err: NeuralDraftError, default: str) -> str:
    """The ``error_code`` for a call refused in a way that trying again cannot change."""
    for cls, code in _PERMANENT_CODES:
        if isinstance(err, cls):
            return code
    return err.code or default


def announce_failure(job: Job) -> None:
    logger.warning(
        "Neural Draft job %s failed: %s %s",
        job.remote_id or job.pk,
        job.error_code,
        job.error_message,
    )
    send_on_commit(job_failed, Job, job=job)

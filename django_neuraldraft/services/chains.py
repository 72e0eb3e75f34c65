"""One live chain of task messages per job, whatever the sweep and redeliveries do.

A job is followed by a chain of task messages, each scheduling the next. The
job's row holds the token of the one message allowed to work on it next
(``chain_token``) and when that message is due (``chain_due_at``). A message
first *claims* the job, trading its token for a fresh running one in one
conditional UPDATE, so a redelivered or duplicated message finds a token that
is no longer there and is dropped; when the step is done it *passes* the job
to the next message, which only succeeds if nobody took the chain over
meanwhile. The sweep restarts only chains that are overdue, and by replacing
the token it retires the old chain the next time that one wakes up.

The messages themselves are Celery's business (:mod:`django_neuraldraft.tasks`);
this module only decides who may work on a job.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from django.utils import timezone

from ..choices import JobStatus
from ..models import Job

#: A token a message carries starts with this; the token of a running step never
#: does, so no message, however it was copied, can claim a job while a step runs.
_QUEUED = "q"
_RUNNING = "r"


def new_token() -> str:
    """A token for a message about to be sent."""
    return _QUEUED + uuid.uuid4().hex[1:]


def _running_token() -> str:
    return _RUNNING + uuid.uuid4().hex[1:]


def step_for(job: Job) -> str:
    """Which kind of step ``job`` needs next: ``submit``, ``poll`` or ``ingest``."""
    if not job.remote_id and job.status == JobStatus.PENDING:
        return "submit"
    if job.status == JobStatus.COMPLETED:
        return "ingest"
    return "poll"


def claim(job_pk: int, token: str | None) -> Job | None:
    """Return job ``job_pk`` if the message holding ``token`` may work on it, else ``None``.

    The returned job's ``chain_token`` is the running token the caller passes
    to :func:`pass_on` or :func:`end`.
    """
    if token is not None and not token.startswith(_QUEUED):
        return None
    running = _running_token()
    if not Job.objects.claim_chain(job_pk, token, running):
        return None
    return Job.objects.filter(pk=job_pk, chain_token=running).first()


def pass_on(job_pk: int, running: str, delay: float) -> str | None:
    """Hand the job on to a message due in ``delay`` s; its token, or ``None`` if retired."""
    token = new_token()
    due = timezone.now() + timedelta(seconds=delay)
    return token if Job.objects.pass_chain(job_pk, running, token, due) else None


def end(job_pk: int, running: str) -> None:
    """The job needs no more steps: the chain holding ``running`` stops here."""
    Job.objects.end_chain(job_pk, running)


def restart_overdue(*, grace_seconds: float) -> list[tuple[Job, str]]:
    """Give every job whose chain is overdue by ``grace_seconds`` a new chain token.

    Returns the jobs and their new tokens, for the caller to send one message
    each. A chain that was only late, not lost, finds its token replaced and
    stops at its next step, so restarting never leaves two chains behind.
    """
    before = timezone.now() - timedelta(seconds=grace_seconds)
    restarted = []
    for job in Job.objects.without_live_chain(before=before):
        token = new_token()
        changed = Job.objects.filter(pk=job.pk, chain_token=job.chain_token).update(
            chain_token=token, chain_due_at=timezone.now()
        )
        if changed:
            restarted.append((job, token))
    return restarted

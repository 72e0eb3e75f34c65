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
this module only decides who may work on a job. A version's renditions are
followed the same way (:mod:`.rendition_chain`): every
function takes the ``model`` whose rows carry the chain, jobs by default.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db import models
from django.db.models import Q
from django.utils import timezone

from ..choices import JobStatus
from ..managers import QUEUED, RUNNING, chain_token
from ..models import ImageVersion, Job

#: The models whose rows carry a chain.
ChainModel = type[Job] | type[ImageVersion]


def new_token() -> str:
    """A token for a message about to be sent."""
    return chain_token(QUEUED)


def _running_token() -> str:
    return chain_token(RUNNING)


def queued() -> Q:
    """Rows whose chain waits for its next message to arrive."""
    return Q(chain_token__startswith=QUEUED)


def running() -> Q:
    """Rows whose chain a step claimed and neither passed on nor ended: running, or dead."""
    return Q(chain_token__startswith=RUNNING)


def step_for(job: Job) -> str:
    """Which kind of step ``job`` needs next: ``submit``, ``poll`` or ``ingest``."""
    if not job.remote_id and job.status == JobStatus.PENDING:
        return "submit"
    if job.status == JobStatus.COMPLETED:
        return "ingest"
    return "poll"


def claim(job_pk: int, token: str | None, *, model: ChainModel = Job, hold: float = 0.0) -> Any:
    """Return row ``job_pk`` if the message holding ``token`` may work on it, else ``None``.

    The returned row's ``chain_token`` is the running token the caller passes
    to :func:`pass_on` or :func:`end`. ``hold`` seconds is how long the step
    may run before the sweep counts it as lost; a step that cannot outlive
    its task's time limit holds the chain that long and is never doubled.
    """
    if token is not None and not token.startswith(QUEUED):
        return None
    running = _running_token()
    due = timezone.now() + timedelta(seconds=hold)
    if not model.objects.claim_chain(job_pk, token, running, due=due):
        return None
    return model.objects.filter(pk=job_pk, chain_token=running).first()


def pass_on(job_pk: int, running: str, delay: float, *, model: ChainModel = Job) -> str | None:
    """Hand the row on to a message due in ``delay`` s; its token, or ``None`` if retired."""
    token = new_token()
    due = timezone.now() + timedelta(seconds=delay)
    return token if model.objects.pass_chain(job_pk, running, token, due) else None


def end(job_pk: int, running: str, *, model: ChainModel = Job) -> bool:
    """The row needs no more steps: the chain holding ``running`` stops here.

    ``False`` if that chain had been retired meanwhile.
    """
    return model.objects.end_chain(job_pk, running)


def restart_overdue(*, grace_seconds: float) -> list[tuple[Job, str]]:
    """Give every job whose chain is overdue by ``grace_seconds`` a new chain token.

    Returns the jobs and their new tokens, for the caller to send one message
    each. A chain that was only late, not lost, finds its token replaced and
    stops at its next step, so restarting never leaves two chains behind.
    """
    before = timezone.now() - timedelta(seconds=grace_seconds)
    return restart(Job.objects.without_live_chain(before=before))


def restart(rows: models.QuerySet, **fields: Any) -> list[tuple[Any, str]]:
    """Give each of ``rows`` a new chain token, and ``fields``, unless its chain moved meanwhile.

    Returns the rows and their new tokens, for the caller to send one message each.
    """
    restarted = []
    for row in rows:
        token = new_token()
        changed = rows.model.objects.filter(pk=row.pk, chain_token=row.chain_token).update(
            chain_token=token, chain_due_at=timezone.now(), **fields
        )
        if changed:
            restarted.append((row, token))
    return restarted

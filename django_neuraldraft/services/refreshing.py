"""Catching up with every unfinished job once, in the foreground: a sweep without Celery.

Sites without celery beat run ``manage.py neuraldraft_refresh`` from cron; it
does what the ``neuraldraft.sweep_stale_jobs`` task and the tasks it queues do,
inline: send jobs nobody sent, poll every job in flight once, bind finished
images nobody bound. Each step is safe beside a worker doing the same.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.utils import timezone

from ..models import ImageKey, ImageVersion, Job
from . import rendition_chain
from .generation import submit
from .polling import give_up_if_overdue, poll_once
from .remote import TRANSIENT_ERRORS


@dataclass(frozen=True)
class Refreshed:
    """What one job got: ``step`` is ``submit`` or ``poll``; ``version`` the image it bound.

    ``error`` is set when Neural Draft could not be reached to send the job;
    the job is left for the next run.
    """

    job: Job
    step: str
    version: ImageVersion | None = None
    error: str = ""


def refresh_jobs(image_keys: Iterable[ImageKey] | None = None) -> list[Refreshed]:
    """Submit, poll or ingest each unfinished job, of ``image_keys`` only if given, once."""
    jobs = Job.objects.all()
    if image_keys is not None:
        jobs = jobs.filter(image_key__in=list(image_keys))
    now = timezone.now()
    unsubmitted = list(jobs.unsubmitted(before=now).order_by("created_at", "pk"))
    followed = list(
        (jobs.in_flight().filter(remote_id__isnull=False) | jobs.awaiting_ingest(before=now))
        .order_by("created_at", "pk")
        .distinct()
    )
    return [_submit(job) for job in unsubmitted] + [_poll(job) for job in followed]


def _submit(job: Job) -> Refreshed:
    if give_up_if_overdue(job):
        return Refreshed(job, "submit")
    try:
        job = submit(job)
    except TRANSIENT_ERRORS as err:
        return Refreshed(job, "submit", error=str(err))
    return Refreshed(job, "submit")


def _poll(job: Job) -> Refreshed:
    # poll_once never raises for what Neural Draft answers: a refusal fails the job.
    outcome = poll_once(job)
    if outcome.version is not None:
        rendition_chain.make_after_bind(outcome.version)
    return Refreshed(outcome.job, "poll", outcome.version)

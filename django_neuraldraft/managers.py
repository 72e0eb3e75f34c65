"""Queries and state transitions of the models, kept out of services, tasks and admin."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from django.db import models
from django.db.models import Exists, OuterRef, Q, Subquery, Sum
from django.db.models.functions import Coalesce, Now
from django.utils import timezone

from .choices import IN_FLIGHT_STATUSES, JobStatus, JobType

#: Jobs only move forward: pending < processing < any terminal status.
_STATUS_RANK: dict[str, int] = {
    JobStatus.PENDING: 0,
    JobStatus.PROCESSING: 1,
    JobStatus.COMPLETED: 2,
    JobStatus.FAILED: 2,
    JobStatus.CANCELLED: 2,
}


def statuses_before(status: str) -> list[str]:
    """The statuses from which :meth:`~JobQuerySet.advance` may move a job to ``status``.

    A non-terminal status may be repeated (progress updates while processing);
    a terminal one is final, so ``completed`` never turns into ``failed``
    through a late poll, a replayed webhook or a second worker. The one
    exception is explicit and has its own method, :meth:`JobQuerySet.reject_result`:
    a completed image job whose image we refused becomes ``failed``.
    """
    rank = _STATUS_RANK[status]
    return [
        earlier
        for earlier, earlier_rank in _STATUS_RANK.items()
        if earlier_rank < rank or (earlier == status and rank < 2)
    ]


class ImageKeyQuerySet(models.QuerySet):
    def for_render(self, keys: list[str]) -> models.QuerySet:
        """Each key's row, image on show, running generation and latest colour, in one query.

        Rows are ``(key, alt_text, aspect_ratio, file, width, height, colour,
        MIME type, renditions, pending, latest colour, storage alias)`` tuples:
        what the resolver caches, nothing more. The alias is the storage the
        file on show (and its renditions) was saved to.
        """
        from .models import ImageVersion, Job

        latest_color = (
            ImageVersion.objects.filter(image_key=OuterRef("pk"))
            .exclude(dominant_color="")
            .order_by("-created_at", "-pk")
            .values("dominant_color")[:1]
        )
        return (
            self.filter(key__in=keys)
            .annotate(
                pending=Exists(Job.objects.in_flight().filter(image_key=OuterRef("pk"))),
                latest_color=Subquery(latest_color),
            )
            .order_by()
            .values_list(
                "key",
                "alt_text",
                "aspect_ratio",
                "current__file",
                "current__width",
                "current__height",
                "current__dominant_color",
                "current__mime_type",
                "current__renditions",
                "pending",
                "latest_color",
                "current__storage_alias",
            )
        )


#: A token a message carries starts with this; the token of a running step never
#: does, so no message, however it was copied, can claim a row while a step runs.
QUEUED = "q"
RUNNING = "r"


def chain_token(prefix: str) -> str:
    """A fresh chain token: ``prefix`` (:data:`QUEUED` or :data:`RUNNING`) and 31 random digits."""
    return prefix + uuid.uuid4().hex[1:]


class ChainQuerySet(models.QuerySet):
    """The token swaps of :mod:`django_neuraldraft.services.chains`, for any model that has them.

    A model with ``chain_token`` and ``chain_due_at`` fields is followed by
    one chain of task messages at a time: jobs, and the renditions of a version.
    """

    def claim_chain(
        self, pk: int, token: str | None, running: str, *, due: datetime | None = None
    ) -> bool:
        """Let the task message holding ``token`` work on row ``pk`` under ``running``.

        ``token`` is the ticket the message carries; ``None`` (a message sent
        by hand) takes the chain over from whichever message held it. The
        message that claims first wins; a duplicate or superseded one matches
        no row and is dropped.
        """
        rows = self.filter(pk=pk)
        if token is not None:
            rows = rows.filter(chain_token=token)
        return rows.update(chain_token=running, chain_due_at=due or timezone.now()) == 1

    def start_chain(self, pk: int, **fields: Any) -> str:
        """Give row ``pk`` a chain, due now, with ``fields``; the token its first message carries.

        Whatever chain the row had is retired: its next message is dropped.
        """
        token = chain_token(QUEUED)
        self.filter(pk=pk).update(chain_token=token, chain_due_at=timezone.now(), **fields)
        return token

    def pass_chain(self, pk: int, running: str, token: str, due: datetime) -> bool:
        """Hand row ``pk`` from the step holding ``running`` to the next message, ``token``."""
        return (
            self.filter(pk=pk, chain_token=running).update(chain_token=token, chain_due_at=due)
            == 1
        )

    def end_chain(self, pk: int, running: str) -> bool:
        return (
            self.filter(pk=pk, chain_token=running).update(chain_token="", chain_due_at=None) == 1
        )


class ImageVersionQuerySet(ChainQuerySet):
    def renditions_overdue(self, *, before: datetime) -> ImageVersionQuerySet:
        """Versions whose renditions chain should have touched them before ``before``.

        A version has a chain from the moment it is stored until its
        renditions are made or given up on; one overdue lost its message.
        """
        return self.exclude(chain_token="").filter(
            Q(chain_due_at__lt=before) | Q(chain_due_at__isnull=True)
        )


class JobQuerySet(ChainQuerySet):
    def in_flight(self) -> JobQuerySet:
        return self.filter(status__in=IN_FLIGHT_STATUSES)

    def advance(self, pk: int, status: str, **fields: Any) -> bool:
        """Move job ``pk`` to ``status`` with ``fields`` unless it is already past it.

        One conditional UPDATE, so concurrent pollers, webhooks and workers
        cannot move a job backwards. Returns whether the row changed.
        """
        changed = self.filter(pk=pk, status__in=statuses_before(status)).update(
            status=status, updated_at=timezone.now(), **fields
        )
        return changed == 1

    def recent_durations(self, limit: int) -> list[float]:
        """Seconds each of the latest ``limit`` completed generations ran, newest first.

        On Neural Draft's clock (created to last updated) when it gave both
        times, else on ours (created to seen finished, a poll's lateness
        more). Times that do not follow each other are left out.
        """
        rows = (
            self.filter(type=JobType.IMAGE_GENERATE, status=JobStatus.COMPLETED)
            .order_by("-created_at")
            .values_list("remote_created_at", "remote_updated_at", "created_at", "finished_at")
        )
        durations = []
        for remote_start, remote_end, start, end in rows[:limit]:
            if remote_start and remote_end and remote_end > remote_start:
                durations.append((remote_end - remote_start).total_seconds())
            elif end and end > start:
                durations.append((end - start).total_seconds())
        return durations

    def unsubmitted(self, *, before: datetime) -> JobQuerySet:
        """Pending jobs that were never sent, created before ``before``."""
        return self.filter(status=JobStatus.PENDING, remote_id__isnull=True, created_at__lt=before)

    def awaiting_ingest(self, *, before: datetime) -> JobQuerySet:
        """Image jobs that finished before ``before`` and whose image was never bound."""
        return self.filter(
            type=JobType.IMAGE_GENERATE,
            status=JobStatus.COMPLETED,
            image_key__isnull=False,
            image_version__isnull=True,
            finished_at__lt=before,
        )

    def reject_result(self, pk: int, **fields: Any) -> bool:
        """Move a completed job whose image was refused to ``failed``; the one step back.

        Neural Draft finished the job, but what it made cannot be kept (refused
        URL, invalid image, an ingest that cannot complete). Only a completed
        job with no bound image moves, so a bound image is never disowned.
        """
        changed = self.filter(
            pk=pk, status=JobStatus.COMPLETED, image_version__isnull=True
        ).update(status=JobStatus.FAILED, updated_at=timezone.now(), **fields)
        return changed == 1

    def start_sending(self, pk: int) -> bool:
        """Record that job ``pk`` is being sent; false if it was cancelled or sent meanwhile.

        The conditional UPDATE that decides a race with :meth:`cancel_unsent`:
        whichever runs first wins, so a job is either never sent or never
        cancelled without Neural Draft hearing of it.
        """
        changed = self.filter(pk=pk, status=JobStatus.PENDING, remote_id__isnull=True).update(
            sent_at=Coalesce("sent_at", Now()), updated_at=timezone.now()
        )
        return changed == 1

    def cancel_unsent(self, pk: int) -> bool:
        """Cancel job ``pk`` locally if nothing was ever sent for it; return whether it was."""
        changed = self.filter(
            pk=pk, status=JobStatus.PENDING, remote_id__isnull=True, sent_at__isnull=True
        ).update(
            status=JobStatus.CANCELLED,
            finished_at=timezone.now(),
            next_poll_at=None,
            updated_at=timezone.now(),
        )
        return changed == 1

    def request_cancel(self, pk: int, *, unsent_only: bool = False) -> bool:
        """Remember that job ``pk`` is to be cancelled, for whoever learns its remote id."""
        pending = self.in_flight().filter(pk=pk, cancel_requested_at__isnull=True)
        if unsent_only:
            pending = pending.filter(remote_id__isnull=True)
        return pending.update(cancel_requested_at=timezone.now()) == 1

    def without_live_chain(self, *, before: datetime) -> JobQuerySet:
        """Jobs that still need work but whose chain should have touched them before ``before``.

        Unfinished jobs, and completed image jobs whose image is not bound yet.
        """
        needs_work = Q(status__in=IN_FLIGHT_STATUSES) | Q(
            type=JobType.IMAGE_GENERATE,
            status=JobStatus.COMPLETED,
            image_key__isnull=False,
            image_version__isnull=True,
        )
        return self.filter(needs_work).filter(
            Q(chain_due_at__lt=before) | Q(chain_due_at__isnull=True)
        )

    def credits_reserved(self) -> int:
        """Credits of the jobs on their way to Neural Draft, not yet accepted there.

        Once accepted, a job's credits are in the ledger
        (:class:`~django_neuraldraft.models.CreditSpend`); a job that ends
        without being accepted was charged nothing and reserves nothing.
        """
        waiting = self.filter(remote_id__isnull=True, status__in=IN_FLIGHT_STATUSES)
        return waiting.aggregate(total=Sum("credits"))["total"] or 0


class CreditSpendQuerySet(models.QuerySet):
    def credits_since(self, since: datetime) -> int:
        """Credits the ledger records as spent since ``since``."""
        spent = self.filter(spent_at__gte=since)
        return spent.aggregate(total=Sum("credits"))["total"] or 0

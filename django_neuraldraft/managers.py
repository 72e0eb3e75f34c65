"""Queries and state transitions of the models, kept out of services, tasks and admin."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import models
from django.db.models import Exists, OuterRef, Q, Subquery, Sum
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
    """The statuses a job may be in and still move to ``status``.

    A non-terminal status may be repeated (progress updates while processing);
    a terminal one is final, so ``completed`` never turns into ``failed``
    through a late poll, a replayed webhook or a second worker.
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
        pending, latest colour, storage alias)`` tuples: what the resolver caches,
        nothing more. The alias is the storage the file on show was saved to.
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
                "pending",
                "latest_color",
                "current__storage_alias",
            )
        )


class JobQuerySet(models.QuerySet):
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

    def unsubmitted(self, *, before: datetime) -> JobQuerySet:
        """Pending jobs that were never sent, created before ``before``."""
        return self.filter(status=JobStatus.PENDING, remote_id__isnull=True, created_at__lt=before)

    def overdue_polls(self, *, before: datetime) -> JobQuerySet:
        """Submitted, unfinished jobs whose next poll should have happened before ``before``."""
        return (
            self.in_flight()
            .filter(remote_id__isnull=False)
            .filter(Q(next_poll_at__lt=before) | Q(next_poll_at__isnull=True))
        )

    def awaiting_ingest(self, *, before: datetime) -> JobQuerySet:
        """Image jobs that finished before ``before`` and whose image was never bound."""
        return self.filter(
            type=JobType.IMAGE_GENERATE,
            status=JobStatus.COMPLETED,
            image_key__isnull=False,
            image_version__isnull=True,
            finished_at__lt=before,
        )

    def credits_spent_since(self, since: datetime) -> int:
        """Credits committed by jobs created since ``since``: sent, or on their way to be."""
        committed = self.filter(created_at__gte=since).filter(
            Q(remote_id__isnull=False) | Q(status__in=IN_FLIGHT_STATUSES)
        )
        return committed.aggregate(total=Sum("credits"))["total"] or 0

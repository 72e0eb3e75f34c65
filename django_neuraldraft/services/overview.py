"""Where each image key stands: image on show, running job, last outcome, in a few queries."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import OuterRef, Subquery

from ..choices import JobStatus
from ..models import ImageKey, ImageVersion, Job


@dataclass(frozen=True)
class KeyStatus:
    """One key's state. ``latest_job`` is its newest job of any status; ``running`` is that
    job while it is in flight (a key runs one generation at a time).
    """

    image_key: ImageKey
    current: ImageVersion | None
    latest_job: Job | None

    @property
    def running(self) -> Job | None:
        job = self.latest_job
        return job if job is not None and not job.is_terminal else None

    @property
    def failed(self) -> bool:
        """Whether the newest job failed: the key needs a look, whatever it shows."""
        return self.latest_job is not None and self.latest_job.status == JobStatus.FAILED


def key_statuses(keys: list[str] | None = None) -> list[KeyStatus]:
    """The status of ``keys`` (all when ``None``), in key order; unknown keys are left out."""
    latest_job = Job.objects.filter(image_key=OuterRef("pk")).order_by("-created_at", "-pk")
    image_keys = ImageKey.objects.select_related("current").annotate(
        latest_job_pk=Subquery(latest_job.values("pk")[:1])
    )
    if keys is not None:
        image_keys = image_keys.filter(key__in=keys)
    rows = list(image_keys.order_by("key"))
    jobs = Job.objects.in_bulk([k.latest_job_pk for k in rows if k.latest_job_pk])
    return [
        KeyStatus(image_key, image_key.current, jobs.get(image_key.latest_job_pk))
        for image_key in rows
    ]

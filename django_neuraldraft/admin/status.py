"""What an image key is doing, read for a whole page of keys in one query, and how it looks.

The change list, the change page and the JSON status view all show a key
through :func:`with_status` and :func:`status_badge`, so the live updates
swap in exactly the HTML the page was rendered with.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Exists, OuterRef, Q, QuerySet, Subquery
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _

from ..choices import JobStatus, JobType
from ..models import ImageKey, ImageVersion, Job

READY = "ready"
GENERATING = "generating"
FAILED = "failed"
EMPTY = "empty"

#: The states of a key, in the order the status filter lists them.
STATES = {
    READY: _("ready"),
    GENERATING: _("generating"),
    FAILED: _("failed"),
    EMPTY: _("no image"),
}


def with_status(queryset: QuerySet[ImageKey]) -> QuerySet[ImageKey]:
    """Annotate each key with its running job, its latest generation and waiting candidates.

    A latest generation that Neural Draft finished but whose image is not
    stored yet (the ingest step still to run) counts as generating: the key
    has no new image to show, and the live update must keep asking.
    Subqueries, not joins: a page of keys stays one query however many jobs
    and versions each key has.
    """
    running = Job.objects.in_flight().filter(image_key=OuterRef("pk")).order_by("-created_at")
    latest = Job.objects.filter(image_key=OuterRef("pk"), type=JobType.IMAGE_GENERATE).order_by(
        "-created_at", "-pk"
    )
    return queryset.select_related("current").annotate(
        running_status=Subquery(running.values("status")[:1]),
        running_progress=Subquery(running.values("progress")[:1]),
        latest_pk=Subquery(latest.values("pk")[:1]),
        latest_status=Subquery(latest.values("status")[:1]),
        latest_error_code=Subquery(latest.values("error_code")[:1]),
        latest_stored=Exists(ImageVersion.objects.filter(job_id=OuterRef("latest_pk"))),
        has_candidates=Exists(
            ImageVersion.objects.filter(image_key=OuterRef("pk"), candidate=True)
        ),
    )


def filter_by_state(queryset: QuerySet[ImageKey], state: str) -> QuerySet[ImageKey]:
    """Keys of an annotated ``queryset`` in ``state``; the precedence :func:`state_of` uses."""
    # Spelled out for SQL's NULLs: a key without any job has no latest_status.
    stored_or_not_finished = (
        Q(latest_status__isnull=True)
        | ~Q(latest_status=JobStatus.COMPLETED)
        | Q(latest_stored=True)
    )
    idle = Q(running_status__isnull=True) & stored_or_not_finished
    failed = Q(latest_status=JobStatus.FAILED)
    if state == GENERATING:
        return queryset.filter(~idle)
    if state == FAILED:
        return queryset.filter(idle & failed)
    not_failed = Q(latest_status__isnull=True) | ~failed
    if state == READY:
        return queryset.filter(idle & not_failed & Q(current__isnull=False))
    if state == EMPTY:
        return queryset.filter(idle & not_failed & Q(current__isnull=True))
    return queryset


@dataclass(frozen=True)
class KeyStatus:
    state: str
    progress: int | None
    error_code: str
    has_candidates: bool
    #: Finished at Neural Draft, its image not stored yet: nothing left to cancel.
    storing: bool = False

    @property
    def in_flight(self) -> bool:
        return self.state == GENERATING


def state_of(image_key: ImageKey) -> KeyStatus:
    """The status of a key read through :func:`with_status`: generating, failed, ready, empty."""
    has_candidates = bool(getattr(image_key, "has_candidates", False))
    if getattr(image_key, "running_status", None):
        return KeyStatus(
            GENERATING, getattr(image_key, "running_progress", 0) or 0, "", has_candidates
        )
    if getattr(image_key, "latest_status", None) == JobStatus.COMPLETED and not getattr(
        image_key, "latest_stored", True
    ):
        return KeyStatus(GENERATING, 100, "", has_candidates, storing=True)
    if getattr(image_key, "latest_status", None) == JobStatus.FAILED:
        return KeyStatus(
            FAILED, None, getattr(image_key, "latest_error_code", "") or "", has_candidates
        )
    state = READY if image_key.current_id else EMPTY
    return KeyStatus(state, None, "", has_candidates)


def status_badge(image_key: ImageKey, status_url: str) -> str:
    """The badge of a key; ``data-nd-*`` attributes tell the live-update script what to ask."""
    status = state_of(image_key)
    parts = [
        format_html(
            '<span class="nd-badge nd-badge--{}">{}</span>', status.state, STATES[status.state]
        )
    ]
    if status.state == GENERATING:
        parts.append(
            format_html(
                '<progress class="nd-progress" max="100" value="{}"></progress>'
                '<span class="nd-percent">{}%</span>',
                status.progress,
                status.progress,
            )
        )
    if status.error_code:
        parts.append(format_html('<code class="nd-error-code">{}</code>', status.error_code))
    if status.has_candidates:
        parts.append(
            format_html('<span class="nd-badge nd-badge--review">{}</span>', _("to review"))
        )
    return format_html(
        '<span class="nd-status" data-nd-status="{}" data-nd-state="{}" data-nd-url="{}">'
        "{}</span>",
        image_key.pk,
        status.state,
        status_url,
        format_html_join("", "{}", ((part,) for part in parts)),
    )


def image_url(version: ImageVersion | None) -> str | None:
    return version.file.url if version is not None else None


def thumbnail(image_key: ImageKey, *, css_class: str = "nd-thumb") -> str:
    """The image on show in a box the live-update script fills when an image is bound."""
    url = image_url(image_key.current)
    content = format_html('<img src="{}" alt="" loading="lazy">', url) if url else "—"
    return format_html(
        '<span class="{}" data-nd-image="{}">{}</span>', css_class, image_key.pk, content
    )


def as_json(image_key: ImageKey, status_url: str) -> dict[str, object]:
    """One key's entry in the JSON status view."""
    status = state_of(image_key)
    return {
        "id": image_key.pk,
        "key": image_key.key,
        "state": status.state,
        "progress": status.progress,
        "error_code": status.error_code,
        "image": image_url(image_key.current),
        "badge": status_badge(image_key, status_url),
    }

"""The job admin: a read-only mirror of Neural Draft's jobs, with Refresh and Cancel.

A job's state belongs to Neural Draft and to :mod:`django_neuraldraft.services`;
nobody edits it here, and a job still running cannot be deleted.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext as _, gettext_lazy

from .. import services
from ..choices import IN_FLIGHT_STATUSES
from ..exceptions import NeuralDraftError
from ..models import Job
from .errors import describe_error
from .permissions import may_refresh


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = [
        "remote_id_or_pk",
        "type",
        "status_badge",
        "progress_bar",
        "image_key_link",
        "requested_by",
        "created_at",
        "finished_at",
        "error_code",
    ]
    list_filter = ["status", "type"]
    list_select_related = ["image_key", "requested_by"]
    search_fields = ["remote_id", "image_key__key", "error_code"]
    date_hierarchy = "created_at"
    actions = ["refresh_selected", "cancel_selected"]
    fieldsets = [
        (
            None,
            {"fields": ["remote_id", "type", "status", "progress", "image_key", "requested_by"]},
        ),
        (gettext_lazy("Progress"), {"fields": ["message", "steps_list"]}),
        (
            gettext_lazy("Error"),
            {
                "fields": [
                    "error_code",
                    "error_message",
                    "last_error",
                    "last_error_at",
                    "failed_attempts",
                ]
            },
        ),
        (gettext_lazy("Request"), {"fields": ["params_json", "credits", "idempotency_key"]}),
        (gettext_lazy("As Neural Draft describes it"), {"fields": ["result_json", "raw_json"]}),
        (
            gettext_lazy("Times"),
            {
                "fields": [
                    "created_at",
                    "sent_at",
                    "cancel_requested_at",
                    "remote_created_at",
                    "remote_updated_at",
                    "finished_at",
                    "polls",
                    "last_polled_at",
                    "next_poll_at",
                ]
            },
        ),
    ]

    class Media:
        css = {"all": ["neuraldraft/admin.css"]}

    def get_readonly_fields(self, request: HttpRequest, obj: Job | None = None) -> list[str]:
        return [
            name
            for _title, options in self.fieldsets
            for name in options["fields"]
            if isinstance(name, str)
        ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Job | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Job | None = None) -> bool:
        # Only from a finished job's own page: the bulk delete action would take
        # running jobs along, leaving remote work nobody follows.
        return obj is not None and obj.is_terminal and super().has_delete_permission(request, obj)

    def has_cancel_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(f"{self.opts.app_label}.cancel_job")

    def has_refresh_permission(self, request: HttpRequest) -> bool:
        return may_refresh(request.user)

    @admin.display(description=gettext_lazy("remote id"), ordering="remote_id")
    def remote_id_or_pk(self, obj: Job) -> str:
        return obj.remote_id or _("unsubmitted #%(pk)d") % {"pk": obj.pk}

    @admin.display(description=gettext_lazy("status"), ordering="status")
    def status_badge(self, obj: Job) -> str:
        return format_html(
            '<span class="nd-badge nd-badge--{}">{}</span>', obj.status, obj.get_status_display()
        )

    @admin.display(description=gettext_lazy("progress"), ordering="progress")
    def progress_bar(self, obj: Job) -> str:
        return format_html(
            '<progress class="nd-progress" max="100" value="{}"></progress>'
            '<span class="nd-percent">{}%</span>',
            obj.progress,
            obj.progress,
        )

    @admin.display(description=gettext_lazy("image key"), ordering="image_key__key")
    def image_key_link(self, obj: Job) -> str:
        if obj.image_key is None:
            return "—"
        url = reverse(
            f"{self.admin_site.name}:neuraldraft_imagekey_change", args=[obj.image_key_id]
        )
        return format_html('<a href="{}">{}</a>', url, obj.image_key.key)

    @admin.display(description=gettext_lazy("steps"))
    def steps_list(self, obj: Job) -> str:
        steps = [step for step in obj.steps if isinstance(step, dict)]
        if not steps:
            return "—"
        return format_html(
            '<ol class="nd-steps">{}</ol>',
            format_html_join(
                "",
                '<li class="nd-step--{}">{}</li>',
                (
                    (
                        "done"
                        if step.get("completed")
                        else "active"
                        if step.get("active")
                        else "todo",
                        step.get("name", ""),
                    )
                    for step in steps
                ),
            ),
        )

    @admin.display(description=gettext_lazy("request parameters"))
    def params_json(self, obj: Job) -> str:
        return _pretty(obj.params)

    @admin.display(description=gettext_lazy("result"))
    def result_json(self, obj: Job) -> str:
        return _pretty(obj.result)

    @admin.display(description=gettext_lazy("last remote response"))
    def raw_json(self, obj: Job) -> str:
        return _pretty(obj.raw)

    @admin.action(description=gettext_lazy("Refresh the selected jobs"), permissions=["refresh"])
    def refresh_selected(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        for job in queryset.filter(remote_id__isnull=False):
            try:
                outcome = services.poll_once(job)
            except NeuralDraftError as err:
                self._report_error(request, job, err)
                continue
            self.message_user(
                request,
                _("Job %(job)s: %(status)s, %(progress)d%%.")
                % {
                    "job": _label(outcome.job),
                    "status": outcome.job.get_status_display(),
                    "progress": outcome.job.progress,
                },
            )

    @admin.action(description=gettext_lazy("Cancel the selected jobs"), permissions=["cancel"])
    def cancel_selected(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        for job in queryset.filter(status__in=IN_FLIGHT_STATUSES):
            try:
                job = services.cancel(job)
            except NeuralDraftError as err:
                self._report_error(request, job, err)
                continue
            self.message_user(
                request,
                _("Job %(job)s: %(status)s.")
                % {"job": _label(job), "status": job.get_status_display()},
            )

    def _report_error(self, request: HttpRequest, job: Job, err: NeuralDraftError) -> None:
        self.message_user(
            request,
            _("Job %(job)s: %(error)s") % {"job": _label(job), "error": describe_error(err)},
            messages.ERROR,
        )


def _label(job: Job) -> str:
    """How a message names a job: its remote id, or its local number before it is sent."""
    return job.remote_id or f"#{job.pk}"


def _pretty(value: Any) -> str:
    if value in (None, {}, []):
        return "—"
    return format_html(
        '<pre class="nd-json">{}</pre>', json.dumps(value, indent=2, sort_keys=True)
    )

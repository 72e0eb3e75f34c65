"""Webhook deliveries in the admin: read-only, with a replay action for those allowed to."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _, ngettext

from .. import webhooks
from ..models import WebhookEvent

#: Every field, shown and none editable.
_FIELDS = (
    "received_at",
    "processed_at",
    "outcome",
    "error",
    "verified",
    "event_id",
    "event_type",
    "delivery_id",
    "remote_job_id",
    "job",
    "replays",
    "headers",
    "body",
    "body_truncated",
)


@admin.register(WebhookEvent)
class WebhookEventAdmin(admin.ModelAdmin):
    list_display = [
        "received_at",
        "event_type",
        "event_id",
        "remote_job_id",
        "outcome",
        "verified",
        "replays",
    ]
    list_filter = ["outcome", "verified", "event_type"]
    search_fields = ["event_id", "delivery_id", "remote_job_id"]
    date_hierarchy = "received_at"
    list_select_related = ["job"]
    actions = ["replay"]
    fields = _FIELDS
    readonly_fields = _FIELDS

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: WebhookEvent | None = None) -> bool:
        return False

    def has_replay_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("neuraldraft.replay_webhookevent")

    @admin.action(description=_("Replay selected deliveries"), permissions=["replay"])
    def replay(self, request: HttpRequest, queryset: QuerySet[WebhookEvent]) -> None:
        queued = refused = done = unqueued = 0
        for event in queryset:
            try:
                if webhooks.replay(event):
                    queued += 1
                else:
                    done += 1
            except webhooks.RejectedError:
                refused += 1
            except webhooks.NotQueuedError:
                unqueued += 1
        if queued:
            self.message_user(
                request,
                ngettext(
                    "Queued %(count)d delivery for processing.",
                    "Queued %(count)d deliveries for processing.",
                    queued,
                )
                % {"count": queued},
                messages.SUCCESS,
            )
        if done:
            self.message_user(
                request,
                ngettext(
                    "%(count)d delivery was processed already.",
                    "%(count)d deliveries were processed already.",
                    done,
                )
                % {"count": done},
                messages.INFO,
            )
        if unqueued:
            self.message_user(
                request,
                ngettext(
                    "%(count)d delivery could not be queued: the Celery broker is "
                    "unreachable. It is marked failed; replay it once the broker is back.",
                    "%(count)d deliveries could not be queued: the Celery broker is "
                    "unreachable. They are marked failed; replay them once the broker is back.",
                    unqueued,
                )
                % {"count": unqueued},
                messages.ERROR,
            )
        if refused:
            self.message_user(
                request,
                ngettext(
                    "%(count)d delivery was not replayed: only verified deliveries "
                    "naming a job can be.",
                    "%(count)d deliveries were not replayed: only verified deliveries "
                    "naming a job can be.",
                    refused,
                )
                % {"count": refused},
                messages.WARNING,
            )

"""``manage.py neuraldraft_webhook_replay ID|--failed``: process stored deliveries again."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_neuraldraft import webhooks
from django_neuraldraft.choices import WebhookOutcome
from django_neuraldraft.models import WebhookEvent
from django_neuraldraft.tasks import process_webhook
from django_neuraldraft.terminal import printable


class Command(BaseCommand):
    help = (
        "Process stored webhook deliveries again, in this process: one by its number or "
        "event id (evt_…), or every failed one with --failed. Exits 1 if any still fails."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "id", nargs="?", help="a delivery's number in the admin, or its evt_ id"
        )
        parser.add_argument("--failed", action="store_true", help="replay every failed delivery")
        parser.add_argument("--json", action="store_true", help="print one JSON object per line")

    def handle(self, *args: Any, id: str | None, failed: bool, **options: Any) -> None:
        if bool(id) == failed:
            raise CommandError("Give one delivery ID, or --failed for all failed deliveries.")
        events = list(self._select(id, failed))
        still_failing = 0
        for event in events:
            outcome, error = self._replay(event)
            still_failing += outcome == WebhookOutcome.FAILED
            if options["json"]:
                self.stdout.write(
                    json.dumps(
                        {
                            "id": event.pk,
                            "event_id": event.event_id,
                            "outcome": outcome,
                            "error": error,
                        }
                    )
                )
            else:
                event_id = printable(event.event_id) or "-"
                self.stdout.write(f"{event.pk} {event_id}: {outcome} {printable(error)}".rstrip())
        if failed and not events and not options["json"]:
            self.stdout.write("No failed deliveries.")
        if still_failing:
            raise CommandError(
                f"{still_failing} delivery(ies) failed again; see the errors above.", returncode=1
            )

    def _select(self, id: str | None, failed: bool) -> Iterable[WebhookEvent]:
        if failed or id is None:
            return WebhookEvent.objects.filter(outcome=WebhookOutcome.FAILED).order_by("pk")
        lookup: dict[str, Any] = {"pk": int(id)} if id.isdigit() else {"event_id": id}
        matching = list(WebhookEvent.objects.filter(**lookup).order_by("pk")[:1])
        if not matching:
            raise CommandError(f"No stored webhook delivery {id!r}; list them in the admin.")
        return matching

    def _replay(self, event: WebhookEvent) -> tuple[str, str]:
        try:
            webhooks.prepare_replay(event)
        except webhooks.RejectedError as err:
            raise CommandError(f"Delivery {event.pk}: {printable(err)}") from err
        try:
            process_webhook(event.pk)
        except webhooks.RETRY_LATER:
            pass
        event.refresh_from_db()
        return event.outcome, event.error

"""``manage.py neuraldraft_webhook_register URL``: have Neural Draft post events to this site."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_neuraldraft.exceptions import NeuralDraftConfigurationError, NeuralDraftError
from django_neuraldraft.services.webhooks import register_webhook
from django_neuraldraft.terminal import printable


class Command(BaseCommand):
    help = (
        "Register URL (this site's webhook receiver) with Neural Draft for image.generated "
        "events and print the signing secret once. See docs/webhooks.rst."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "url", help="the receiver's public URL, e.g. https://example.com/neuraldraft/webhook/"
        )
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args: Any, url: str, **options: Any) -> None:
        try:
            endpoint = register_webhook(url)
        except ValueError as err:
            raise CommandError(f"{err} Give the full URL of the receiver.") from err
        except NeuralDraftError as err:
            raise CommandError(f"Neural Draft refused the registration: {printable(err)}") from err
        except NeuralDraftConfigurationError as err:
            raise CommandError(printable(err)) from err
        if options["json"]:
            self.stdout.write(
                json.dumps(
                    {
                        "id": endpoint.id,
                        "url": endpoint.url,
                        "signing_secret": endpoint.signing_secret,
                    }
                )
            )
            return
        self.stdout.write(
            f"Registered webhook endpoint {printable(endpoint.id)} for {printable(endpoint.url)}."
        )
        self.stdout.write("Its signing secret, shown this once and stored nowhere here:")
        self.stdout.write("")
        self.stdout.write(f"    {printable(endpoint.signing_secret)}")
        self.stdout.write("")
        self.stdout.write(
            "Put it in settings.NEURALDRAFT['WEBHOOK_SECRET'], read from the environment or a "
            "secrets store rather than committed, e.g. "
            "'WEBHOOK_SECRET': os.environ['NEURALDRAFT_WEBHOOK_SECRET']. "
            "Until it is set, deliveries are refused."
        )

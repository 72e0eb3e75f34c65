"""``manage.py neuraldraft_sandbox``: a local Neural Draft to develop against, and its settings."""

from __future__ import annotations

import argparse
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.translation import gettext as _

from ...sandbox import SANDBOX_API_KEY
from ...sandbox.cli import add_arguments, build_server, serve_until_interrupted, start


class Command(BaseCommand):
    help = _(
        "Serve the Neural Draft sandbox until Ctrl-C, with the options of "
        "python -m django_neuraldraft.sandbox, and print the NEURALDRAFT settings that use it."
    )
    # The point is to run before the project is configured for Neural Draft.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        add_arguments(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        arguments = argparse.Namespace(**options)
        try:
            server, faults = build_server(arguments)
            start(server, arguments)
        except ValueError as err:
            raise CommandError(str(err)) from err
        with server:
            self.stdout.write(
                _("Neural Draft sandbox running at %(url)s") % {"url": server.base_url}
            )
            for fault in faults:
                self.stdout.write(_("Fault: %(fault)s") % {"fault": fault.to_json()})
            self.stdout.write(_("Point the site at it with these settings:"))
            self.stdout.write(
                "\nNEURALDRAFT = {\n"
                f'    "API_KEY": "{SANDBOX_API_KEY}",\n'
                f'    "BASE_URL": "{server.base_url}",\n'
                "}\n"
            )
            self.stdout.write(_("Press Ctrl-C to stop."))
            self.stdout.flush()
            serve_until_interrupted()
            self.stdout.write(_("Stopping."))

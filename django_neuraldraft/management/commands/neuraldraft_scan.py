"""``manage.py neuraldraft_scan [--create] [--json]``: image keys in templates against slots."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.utils.translation import gettext as _

from ...template_scan import ScanReport, create_missing, scan
from ...terminal import printable
from ..base import dump_json


class Command(BaseCommand):
    help = _(
        "Find the image keys the project's templates name literally, in every template engine "
        "and directory, app templates included; report keys without a slot and slots no "
        "template names. --create adds the missing slots, without a prompt."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--create",
            action="store_true",
            help=_("create the missing image keys (no prompt, so nothing is spent)"),
        )
        parser.add_argument("--json", action="store_true", help=_("print JSON for scripts"))

    def handle(self, *args: Any, **options: Any) -> None:
        report = scan()
        created = (
            [image_key.key for image_key in create_missing(report)] if options["create"] else []
        )
        if options["json"]:
            self.stdout.write(dump_json(as_json(report, created)))
            return
        self.print_report(report, created)

    def print_report(self, report: ScanReport, created: list[str]) -> None:
        keys = report.keys
        self.stdout.write(
            _("%(keys)d key(s) in %(uses)d use(s) of the neuraldraft tags.")
            % {"keys": len(keys), "uses": len(report.uses)}
        )
        for key in report.missing:
            where = ", ".join(f"{printable(use.template)}:{use.line}" for use in keys[key])
            if key in created:
                self.stdout.write(self.style.SUCCESS(_("created: %(key)s") % {"key": key}))
            else:
                self.stdout.write(
                    self.style.WARNING(
                        _("no slot: %(key)s (%(where)s)") % {"key": key, "where": where}
                    )
                )
        for key in report.unused:
            self.stdout.write(_("unused slot: %(key)s") % {"key": key})
        for use in report.invalid:
            self.stdout.write(
                self.style.ERROR(
                    _("invalid key %(key)r at %(template)s:%(line)d")
                    % {"key": use.key, "template": printable(use.template), "line": use.line}
                )
            )
        for use in report.dynamic:
            self.stdout.write(
                _("key from a variable at %(template)s:%(line)d (not checked)")
                % {"template": printable(use.template), "line": use.line}
            )
        for template, reason in report.unreadable:
            self.stdout.write(
                self.style.WARNING(
                    _("could not read %(template)s: %(reason)s")
                    % {"template": printable(template), "reason": printable(reason)}
                )
            )
        if report.missing and not created:
            self.stdout.write(_("Run with --create to add the missing slots."))


def as_json(report: ScanReport, created: list[str]) -> dict[str, Any]:
    return {
        "keys": {key: [use.to_json() for use in uses] for key, uses in report.keys.items()},
        "missing": report.missing,
        "unused": report.unused,
        "created": created,
        "invalid": [use.to_json() for use in report.invalid],
        "dynamic": [use.to_json() for use in report.dynamic],
        "unreadable": [{"template": name, "reason": reason} for name, reason in report.unreadable],
    }

"""``manage.py neuraldraft_cleanup [--keep N] [--dry-run]``: delete old versions and files."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.template.defaultfilters import filesizeformat
from django.utils.translation import gettext as _

from ...arguments import number
from ...services.history import remove_old_versions

#: Versions kept per key besides the one on show, unless --keep says otherwise.
DEFAULT_KEEP = 5


class Command(BaseCommand):
    help = _(
        "Delete image versions that are neither on show nor among the newest N of their key, "
        "and then their files. Nothing a key or another model points at is deleted."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--keep",
            type=number(int, _("a number of versions (0 or more)"), lambda count: count >= 0),
            default=DEFAULT_KEEP,
            metavar="N",
            help=_("newest versions to keep per key (default: %(default)s)"),
        )
        parser.add_argument(
            "--dry-run", action="store_true", help=_("list what would go; change nothing")
        )

    def handle(self, *args: Any, **options: Any) -> None:
        dry_run = options["dry_run"]
        cleanup = remove_old_versions(options["keep"], dry_run=dry_run)
        for version in cleanup.versions:
            self.stdout.write(
                f"{version.image_key.key} {version.pk} {version.created_at:%Y-%m-%d} "
                f"{version.file.name}"
            )
        summary = _("%(verb)s %(versions)d version(s) and %(files)d file(s), %(size)s.") % {
            "verb": _("Would delete") if dry_run else _("Deleted"),
            "versions": len(cleanup.versions),
            "files": len(cleanup.files),
            "size": filesizeformat(cleanup.bytes),
        }
        self.stdout.write(self.style.SUCCESS(summary) if not dry_run else summary)
        if cleanup.failed_files:
            raise CommandError(
                _("The storage could not delete %(names)s; delete them by hand.")
                % {"names": ", ".join(cleanup.failed_files)}
            )

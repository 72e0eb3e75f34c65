"""``manage.py neuraldraft_renditions [--missing] [--key KEY] [--dry-run]``: backfill them."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser, OutputWrapper
from django.utils.translation import gettext as _

from ... import renditions
from ...keys import validate_image_key
from ...models import ImageKey, ImageVersion

_BAR_WIDTH = 24


class Command(BaseCommand):
    help = _(
        "Make the renditions that image versions lack, after a change of the RENDITION_* "
        "settings or an upgrade. Without --missing, recorded renditions whose file is gone "
        "from the storage are made again too."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--missing",
            action="store_true",
            help=_(
                "only versions whose recorded renditions differ from what the settings ask "
                "for; the storage is not asked about the others (fast)"
            ),
        )
        parser.add_argument("--key", help=_("only the versions of this image key"))
        parser.add_argument(
            "--dry-run", action="store_true", help=_("say what would be made; change nothing")
        )

    def handle(self, *args: Any, **options: Any) -> None:
        missing_only, dry_run = options["missing"], options["dry_run"]
        versions = ImageVersion.objects.order_by("pk")
        if options["key"] is not None:
            versions = versions.filter(image_key=_image_key(options["key"]))
        pks = [
            version.pk
            for version in versions.iterator(chunk_size=500)
            if not renditions.is_current(version)
            or (not missing_only and renditions.todo(version, check_files=True))
        ]
        progress = _Progress(self.stdout, len(pks))
        made = failed = 0
        for version in _each(pks):
            if dry_run:
                todo = renditions.todo(version, check_files=not missing_only)
                progress.line(
                    _("%(version)s: would make %(count)d rendition(s)")
                    % {"version": _describe(version), "count": len(todo)}
                )
                if options["verbosity"] > 1:
                    for item in todo:
                        progress.line(f"  {item.name}")
                made += len(todo)
                continue
            outcome = renditions.make_for(version, check_files=not missing_only)
            made += outcome.made
            failed += len(outcome.failed)
            progress.step(
                _("%(version)s: %(made)d made, %(failed)d failed")
                % {
                    "version": _describe(version),
                    "made": outcome.made,
                    "failed": len(outcome.failed),
                }
            )
            for image_format, width, reason in outcome.failed:
                progress.line(self.style.WARNING(f"  {image_format} {width}w: {reason}"))
        progress.finish()
        summary = _("%(verb)s %(made)d rendition(s) for %(versions)d version(s).") % {
            "verb": _("Would make") if dry_run else _("Made"),
            "made": made,
            "versions": len(pks),
        }
        self.stdout.write(summary if dry_run else self.style.SUCCESS(summary))
        if failed:
            raise CommandError(
                _("%(failed)d rendition(s) could not be made; the log says why.")
                % {"failed": failed}
            )


def _image_key(key: str) -> ImageKey:
    try:
        validate_image_key(key)
    except ValidationError as err:
        raise CommandError(" ".join(err.messages)) from err
    image_key = ImageKey.objects.filter(key=key).first()
    if image_key is None:
        raise CommandError(_("No image key %(key)s.") % {"key": key})
    return image_key


def _each(pks: list[int]) -> Iterator[ImageVersion]:
    """The versions of ``pks`` in order, read a few at a time; one deleted meanwhile is skipped."""
    for start in range(0, len(pks), 100):
        chunk = pks[start : start + 100]
        found = ImageVersion.objects.select_related("image_key").in_bulk(chunk)
        yield from (found[pk] for pk in chunk if pk in found)


def _describe(version: ImageVersion) -> str:
    return f"{version.image_key.key} #{version.pk}"


class _Progress:
    """A bar redrawn in place on a terminal; one line per version when output is a file or pipe."""

    def __init__(self, stdout: OutputWrapper, total: int) -> None:
        self.stdout = stdout
        self.total = total
        self.done = 0
        self.drawn = 0
        try:
            self.live = bool(stdout.isatty())
        except (AttributeError, ValueError):
            self.live = False

    def step(self, text: str) -> None:
        self.done += 1
        if not self.live:
            self.stdout.write(text)
            return
        filled = _BAR_WIDTH * self.done // max(1, self.total)
        bar = "#" * filled + "-" * (_BAR_WIDTH - filled)
        line = f"[{bar}] {self.done}/{self.total} {text}"
        line = line[: max(20, shutil.get_terminal_size().columns - 1)]
        self.stdout.write("\r" + line.ljust(self.drawn), ending="")
        self.stdout.flush()
        self.drawn = len(line)

    def line(self, text: str) -> None:
        """A line of its own, above the bar on a terminal."""
        if self.live and self.drawn:
            self.stdout.write("\r" + " " * self.drawn + "\r", ending="")
            self.drawn = 0
        self.stdout.write(text)

    def finish(self) -> None:
        if self.live and self.drawn:
            self.stdout.write("")
            self.drawn = 0

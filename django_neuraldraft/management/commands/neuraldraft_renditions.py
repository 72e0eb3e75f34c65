"""``manage.py neuraldraft_renditions [--missing] [--key KEY] [--dry-run]``: backfill them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser, OutputWrapper
from django.utils.translation import gettext as _

from ... import renditions
from ...models import ImageVersion
from ...services import rendition_chain
from ..base import EXIT_FAILED, EXIT_INTERRUPTED, checked_keys, existing_image_keys
from ..progress import LiveLine, bar


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
            (image_key,) = existing_image_keys(checked_keys([options["key"]]))
            versions = versions.filter(image_key=image_key)
        pks = [
            version.pk
            for version in versions.iterator(chunk_size=500)
            if not renditions.is_current(version)
            or (not missing_only and renditions.todo(version, check_files=True))
        ]
        progress = _Progress(self.stdout, len(pks))
        tally = _Tally()
        try:
            for version in _each(pks):
                if dry_run:
                    self.plan(
                        version,
                        progress,
                        tally,
                        check_files=not missing_only,
                        verbosity=options["verbosity"],
                    )
                else:
                    self.make(version, progress, tally, check_files=not missing_only)
        except KeyboardInterrupt:
            progress.finish()
            raise CommandError(
                _("Interrupted after %(made)d rendition(s); run the command again to go on.")
                % {"made": tally.made},
                returncode=EXIT_INTERRUPTED,
            ) from None
        progress.finish()
        summary = _("%(verb)s %(made)d rendition(s) for %(versions)d version(s).") % {
            "verb": _("Would make") if dry_run else _("Made"),
            "made": tally.made,
            "versions": len(pks),
        }
        self.stdout.write(summary if dry_run else self.style.SUCCESS(summary))
        if tally.failed:
            raise CommandError(
                _("%(failed)d rendition(s) could not be made; the log says why.")
                % {"failed": tally.failed},
                returncode=EXIT_FAILED,
            )

    def plan(
        self,
        version: ImageVersion,
        progress: _Progress,
        tally: _Tally,
        *,
        check_files: bool,
        verbosity: int,
    ) -> None:
        todo = renditions.todo(version, check_files=check_files)
        progress.line(
            _("%(version)s: would make %(count)d rendition(s)")
            % {"version": _describe(version), "count": len(todo)}
        )
        if verbosity > 1:
            for item in todo:
                progress.line(f"  {item.name}")
        tally.made += len(todo)

    def make(
        self, version: ImageVersion, progress: _Progress, tally: _Tally, *, check_files: bool
    ) -> None:
        outcome = rendition_chain.make_now(version, check_files=check_files)
        tally.made += outcome.made
        tally.failed += len(outcome.failed)
        progress.step(
            _("%(version)s: %(made)d made, %(failed)d failed")
            % {"version": _describe(version), "made": outcome.made, "failed": len(outcome.failed)}
        )
        for image_format, width, reason in outcome.failed:
            progress.line(self.style.WARNING(f"  {image_format} {width}w: {reason}"))


@dataclass
class _Tally:
    made: int = 0
    failed: int = 0


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
        self.live_line = LiveLine(stdout)
        self.total = total
        self.done = 0

    def step(self, text: str) -> None:
        self.done += 1
        if self.live_line.live:
            self.live_line.draw(f"{bar(self.done, self.total)} {self.done}/{self.total} {text}")
        else:
            self.live_line.stdout.write(text)

    def line(self, text: str) -> None:
        """A line of its own, above the bar on a terminal."""
        self.live_line.above(text)

    def finish(self) -> None:
        self.live_line.finish()

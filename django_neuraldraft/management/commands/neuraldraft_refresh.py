"""``manage.py neuraldraft_refresh [--all | KEY ...]``: follow unfinished jobs once, from cron."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.translation import gettext as _

from ...choices import JobStatus
from ...services.refreshing import Refreshed, refresh_jobs
from ...terminal import printable
from ..base import checked_keys, existing_image_keys


class Command(BaseCommand):
    help = _(
        "Send, poll or bind every unfinished Neural Draft job once: the sweep's work, for "
        "sites without celery beat. Safe to run from cron beside a worker."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("keys", nargs="*", metavar="KEY", help=_("only these image keys"))
        parser.add_argument("--all", action="store_true", help=_("every image key"))

    def handle(self, *args: Any, **options: Any) -> None:
        keys = options["keys"]
        if bool(keys) == options["all"]:
            raise CommandError(_("Name image keys or pass --all, not both."))
        image_keys = existing_image_keys(checked_keys(keys)) if keys else None
        results = refresh_jobs(image_keys)
        for result in results:
            self.stdout.write(self.describe(result))
        failed = [r for r in results if r.job.status == JobStatus.FAILED]
        unreachable = [r for r in results if r.error]
        self.stdout.write(
            _("%(count)d job(s) followed, %(bound)d image(s) bound, %(failed)d failed.")
            % {
                "count": len(results),
                "bound": sum(1 for r in results if r.version is not None),
                "failed": len(failed),
            }
        )
        if failed or unreachable:
            raise CommandError(
                _("%(failed)d job(s) failed and %(unreachable)d could not be followed now.")
                % {"failed": len(failed), "unreachable": len(unreachable)}
            )

    def describe(self, result: Refreshed) -> str:
        job = result.job
        label = f"{job.image_key or '-'} {printable(job)}"
        if result.error:
            return self.style.WARNING(
                _("%(label)s: Neural Draft could not be reached (%(error)s); next run retries.")
                % {"label": label, "error": printable(result.error)}
            )
        if result.version is not None:
            return self.style.SUCCESS(
                _("%(label)s: bound %(file)s") % {"label": label, "file": result.version.file.name}
            )
        if job.status == JobStatus.FAILED:
            return self.style.ERROR(
                _("%(label)s: failed: %(message)s")
                % {"label": label, "message": printable(job.error_message or job.error_code)}
            )
        return f"{label}: {job.status} {job.progress}%"

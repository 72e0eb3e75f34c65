"""``manage.py neuraldraft_status [KEY ...] [--json]``: image keys, what they show, what runs."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.translation import gettext as _

from ...models import ImageVersion, Job
from ...services.overview import KeyStatus, key_statuses
from ...terminal import printable
from ..base import EXIT_FAILED, checked_keys, dump_json, existing_image_keys


class Command(BaseCommand):
    help = _(
        "Show image keys: the image on show, the running job and its progress, the last error. "
        "Exits 1 when a named key's latest job failed."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("keys", nargs="*", metavar="KEY", help=_("only these image keys"))
        parser.add_argument("--json", action="store_true", help=_("print JSON for scripts"))

    def handle(self, *args: Any, **options: Any) -> None:
        keys = options["keys"]
        if keys:
            existing_image_keys(checked_keys(keys))
        statuses = key_statuses(keys or None)
        if options["json"]:
            self.stdout.write(
                dump_json(
                    {
                        "keys": [as_json(status) for status in statuses],
                        "failed": [s.image_key.key for s in statuses if s.failed],
                    }
                )
            )
        else:
            for status in statuses:
                self.stdout.write(self.describe(status))
            if not statuses:
                self.stdout.write(_("No image keys yet."))
        failed = [s.image_key.key for s in statuses if s.failed]
        if keys and failed:
            raise CommandError(
                _("The latest job of %(keys)s failed.") % {"keys": ", ".join(failed)},
                returncode=EXIT_FAILED,
            )

    def describe(self, status: KeyStatus) -> str:
        lines = [self.style.MIGRATE_HEADING(status.image_key.key)]
        if status.current is not None:
            version = status.current
            lines.append(
                _("  on show: %(file)s (%(width)dx%(height)d, version %(id)d)")
                % {
                    "file": version.file.name,
                    "width": version.width,
                    "height": version.height,
                    "id": version.pk,
                }
            )
        else:
            lines.append(_("  on show: nothing yet"))
        if status.running is not None:
            job = status.running
            lines.append(
                _("  running: %(job)s, %(status)s %(progress)d%% %(message)s")
                % {
                    "job": printable(job),
                    "status": job.status,
                    "progress": job.progress,
                    "message": printable(job.message),
                }
            )
        if status.failed and status.latest_job is not None:
            job = status.latest_job
            lines.append(
                self.style.ERROR(
                    _("  last job failed: %(job)s: %(message)s (%(code)s)")
                    % {
                        "job": printable(job),
                        "message": printable(job.error_message),
                        "code": printable(job.error_code),
                    }
                )
            )
        return "\n".join(line.rstrip() for line in lines)


def as_json(status: KeyStatus) -> dict[str, Any]:
    image_key = status.image_key
    return {
        "key": image_key.key,
        "prompt": image_key.prompt,
        "style": image_key.style,
        "aspect_ratio": image_key.aspect_ratio,
        "alt_text": image_key.alt_text,
        "current": version_json(status.current),
        "running": job_json(status.running),
        "latest_job": job_json(status.latest_job),
        "failed": status.failed,
    }


def version_json(version: ImageVersion | None) -> dict[str, Any] | None:
    if version is None:
        return None
    return {
        "id": version.pk,
        "file": version.file.name,
        "url": version.file.url,
        "width": version.width,
        "height": version.height,
        "origin": version.origin,
        "created_at": version.created_at.isoformat(),
    }


def job_json(job: Job | None) -> dict[str, Any] | None:
    if job is None:
        return None
    return {
        "id": job.pk,
        "remote_id": job.remote_id,
        "status": job.status,
        "progress": job.progress,
        "message": job.message,
        "error_code": job.error_code,
        "error_message": job.error_message,
        "created_at": job.created_at.isoformat(),
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
    }

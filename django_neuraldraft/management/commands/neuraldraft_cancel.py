"""``manage.py neuraldraft_cancel KEY|JOB_ID``: stop a running generation."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.translation import gettext as _

from ... import services
from ...choices import JobStatus
from ...exceptions import NeuralDraftError
from ...models import Job
from ...terminal import printable


class Command(BaseCommand):
    help = _(
        "Cancel a running job, named by its Neural Draft id (job_...) or by its image key. "
        "Exits 0 when the job ends cancelled."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("target", metavar="KEY|JOB_ID", help=_("an image key or a job_ id"))

    def handle(self, *args: Any, **options: Any) -> None:
        job = self.find(options["target"])
        try:
            job = services.cancel(job)
        except NeuralDraftError as err:
            raise CommandError(
                _("Neural Draft did not cancel %(job)s: %(error)s")
                % {"job": printable(job), "error": printable(err)}
            ) from err
        if not job.is_terminal and job.cancel_requested_at is not None:
            self.stdout.write(
                _(
                    "Job %(job)s is being sent; it will be cancelled at Neural Draft as soon "
                    "as its id is known."
                )
                % {"job": job}
            )
            return
        if job.status != JobStatus.CANCELLED:
            raise CommandError(
                _("Job %(job)s had already ended: %(status)s.")
                % {"job": printable(job), "status": job.status}
            )
        self.stdout.write(
            self.style.SUCCESS(_("Job %(job)s is cancelled.") % {"job": printable(job)})
        )

    def find(self, target: str) -> Job:
        job = Job.objects.filter(remote_id=target).first()
        if job is not None:
            return job
        job = Job.objects.in_flight().filter(image_key__key=target).first()
        if job is not None:
            return job
        if Job.objects.filter(image_key__key=target).exists():
            raise CommandError(_("No job of %(key)s is running.") % {"key": target})
        raise CommandError(
            _("No job %(target)s and no image key of that name; see manage.py neuraldraft_status.")
            % {"target": target}
        )

"""``manage.py neuraldraft_generate KEY --prompt ...``: ask for an image, and maybe wait for it."""

from __future__ import annotations

import math
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from django.utils.translation import gettext as _

from ... import conf, services
from ...arguments import number
from ...choices import JobStatus
from ...client.types import ASPECT_RATIOS
from ...exceptions import BrokerUnavailableError, CreditBudgetExceededError
from ...models import Job
from ...services.watching import wait_for
from ...terminal import printable
from ..base import EXIT_INTERRUPTED, EXIT_TIMED_OUT, checked_keys, user_error
from ..progress import ProgressDisplay


class Command(BaseCommand):
    help = _(
        "Create or update an image key and start a generation. With --wait, follow the job "
        "until its image is bound, without needing a Celery worker."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("key", metavar="KEY", help=_("the image key, e.g. hero.background"))
        parser.add_argument("--prompt", help=_("what to draw; default: the key's saved prompt"))
        parser.add_argument("--style", help=_("style hint, e.g. photorealistic"))
        parser.add_argument("--aspect-ratio", choices=ASPECT_RATIOS, help=_("shape of the image"))
        parser.add_argument("--alt-text", help=_("alternative text for screen readers"))
        parser.add_argument(
            "--wait",
            action="store_true",
            help=_("follow the job here and bind its image before exiting"),
        )
        parser.add_argument(
            "--timeout",
            type=number(
                float, _("a positive number of seconds"), lambda seconds: 0 < seconds < math.inf
            ),
            metavar="SECONDS",
            help=_("with --wait: stop waiting after this long (default: JOB_TIMEOUT)"),
        )

    def handle(self, *args: Any, **options: Any) -> None:
        (key,) = checked_keys([options["key"]])
        if options["timeout"] is not None and not options["wait"]:
            raise CommandError(_("--timeout only applies with --wait."))
        asked_at = timezone.now()
        try:
            job = services.generate(
                key,
                prompt=options["prompt"],
                style=options["style"],
                aspect_ratio=options["aspect_ratio"],
                alt_text=options["alt_text"],
            )
        except (ValidationError, CreditBudgetExceededError) as err:
            raise user_error(err) from err
        except BrokerUnavailableError as err:
            if not options["wait"]:
                raise CommandError(
                    _(
                        "%(error)s To send it now, pass --wait or run manage.py "
                        "neuraldraft_refresh."
                    )
                    % {"error": err}
                ) from err
            self.stderr.write(
                _("The Celery broker is unreachable; sending job %(job)s from here.")
                % {"job": err.job_pk}
            )
            job = Job.objects.get(pk=err.job_pk)
        if job.created_at < asked_at:
            self.stdout.write(
                _("A generation of %(key)s is already running (%(job)s); not starting another.")
                % {"key": key, "job": printable(job)}
            )
        else:
            self.stdout.write(
                _("Asked for a new image of %(key)s (%(credits)d credits): job #%(job)d.")
                % {"key": key, "credits": job.credits, "job": job.pk}
            )
        if options["wait"]:
            self.wait(job, key, options["timeout"] or conf.job_timeout())
        else:
            self.stdout.write(
                _(
                    "A Celery worker sends and follows it. Without one, pass --wait or run "
                    "manage.py neuraldraft_refresh."
                )
            )

    def wait(self, job: Job, key: str, timeout: float) -> None:
        display = ProgressDisplay(self.stdout, key)
        try:
            outcome = wait_for(job, timeout=timeout, on_update=display)
        except KeyboardInterrupt:
            display.finish()
            job.refresh_from_db()
            if job.remote_id is None:
                message = _(
                    "Stopped waiting. Job #%(pk)d is saved but not sent yet; a worker, "
                    "manage.py neuraldraft_refresh or the sweep sends it."
                )
            else:
                message = _(
                    "Stopped waiting. Job %(job)s goes on at Neural Draft; a worker, "
                    "manage.py neuraldraft_refresh or the sweep binds its image."
                )
            raise CommandError(
                message % {"job": printable(job), "pk": job.pk}, returncode=EXIT_INTERRUPTED
            ) from None
        display.finish()
        job = outcome.job
        if outcome.version is not None:
            version = outcome.version
            self.stdout.write(
                self.style.SUCCESS(
                    _("%(key)s now shows %(file)s (%(width)dx%(height)d), from job %(job)s.")
                    % {
                        "key": key,
                        "file": version.file.name,
                        "width": version.width,
                        "height": version.height,
                        "job": printable(job),
                    }
                )
            )
            return
        if outcome.timed_out and outcome.send_error:
            raise CommandError(
                _(
                    "Job #%(job)d is saved but was not sent in %(seconds)g seconds: Neural Draft "
                    "could not be reached (%(error)s). A worker, manage.py neuraldraft_refresh "
                    "or the sweep sends it."
                )
                % {"job": job.pk, "seconds": timeout, "error": printable(outcome.send_error)},
                returncode=EXIT_TIMED_OUT,
            )
        if outcome.timed_out:
            raise CommandError(
                _(
                    "Job %(job)s is still %(status)s after %(seconds)g seconds; it goes on. "
                    "Check it with manage.py neuraldraft_status %(key)s."
                )
                % {"job": printable(job), "status": job.status, "seconds": timeout, "key": key},
                returncode=EXIT_TIMED_OUT,
            )
        if job.status == JobStatus.CANCELLED:
            raise CommandError(_("Job %(job)s was cancelled.") % {"job": printable(job)})
        raise CommandError(
            _("Job %(job)s failed: %(message)s (%(code)s).")
            % {
                "job": printable(job),
                "message": printable(job.error_message) or _("no reason given"),
                "code": printable(job.error_code) or job.status,
            }
        )

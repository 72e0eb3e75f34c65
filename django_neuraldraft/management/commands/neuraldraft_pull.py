"""``manage.py neuraldraft_pull KEY ...``: adopt images that already exist at Neural Draft."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.translation import gettext as _

from ... import services
from ...exceptions import NeuralDraftError, NotFoundError
from ...models import ImageKey
from ...terminal import printable
from ..base import checked_keys


class Command(BaseCommand):
    help = _(
        "Download the image Neural Draft holds for each key (GET /images/{key}) into the "
        "site's storage and show it. Keys are created as needed."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("keys", nargs="+", metavar="KEY", help=_("image keys to pull"))

    def handle(self, *args: Any, **options: Any) -> None:
        failed = []
        for key in checked_keys(options["keys"]):
            before = ImageKey.objects.filter(key=key).values_list("current", flat=True).first()
            try:
                version = services.pull(key)
            except NotFoundError:
                failed.append(key)
                self.stderr.write(
                    _("%(key)s: Neural Draft has no image for this key.") % {"key": key}
                )
                continue
            except NeuralDraftError as err:
                failed.append(key)
                self.stderr.write(_("%(key)s: %(error)s") % {"key": key, "error": printable(err)})
                continue
            if before == version.pk:
                self.stdout.write(_("%(key)s: already shows that image.") % {"key": key})
            else:
                self.stdout.write(
                    self.style.SUCCESS(
                        _("%(key)s: now shows %(file)s (version %(id)d).")
                        % {"key": key, "file": version.file.name, "id": version.pk}
                    )
                )
        if failed:
            raise CommandError(_("Could not pull %(keys)s.") % {"keys": ", ".join(failed)})

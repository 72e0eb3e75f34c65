"""``manage.py neuraldraft_rollback KEY [--to VERSION_ID | --previous]``: show an older image."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.translation import gettext as _

from ... import services
from ...models import ImageKey, ImageVersion
from ...services.history import previous_version
from ...terminal import printable
from ..base import checked_keys, existing_image_keys, user_error


class Command(BaseCommand):
    help = _(
        "Show an older image version of a key again; no file is copied or deleted. Without "
        "--to or --previous, list the key's versions."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("key", metavar="KEY", help=_("the image key"))
        target = parser.add_mutually_exclusive_group()
        target.add_argument("--to", type=int, metavar="VERSION_ID", help=_("the version to show"))
        target.add_argument(
            "--previous", action="store_true", help=_("the version shown before the current one")
        )

    def handle(self, *args: Any, **options: Any) -> None:
        (image_key,) = existing_image_keys(checked_keys([options["key"]]))
        if options["to"] is None and not options["previous"]:
            self.list_versions(image_key)
            return
        if options["previous"]:
            version = previous_version(image_key)
            if version is None:
                raise CommandError(
                    _("%(key)s has no version older than the one on show.") % {"key": image_key}
                )
        else:
            version = ImageVersion.objects.filter(pk=options["to"]).first()
            if version is None:
                raise CommandError(
                    _("No image version %(id)d; see manage.py neuraldraft_rollback %(key)s.")
                    % {"id": options["to"], "key": image_key}
                )
        try:
            services.rollback(image_key, version)
        except ValidationError as err:
            raise user_error(err) from err
        self.stdout.write(
            self.style.SUCCESS(
                _("%(key)s now shows version %(id)d: %(file)s")
                % {"key": image_key, "id": version.pk, "file": version.file.name}
            )
        )

    def list_versions(self, image_key: ImageKey) -> None:
        for version in image_key.versions.order_by("-created_at", "-pk"):
            marker = "*" if version.pk == image_key.current_id else " "
            prompt = printable(version.prompt, 60)
            self.stdout.write(
                f"{marker} {version.pk:>6}  {version.created_at:%Y-%m-%d %H:%M}  "
                f"{version.origin:<9}  {version.file.name}  {prompt}".rstrip()
            )
        self.stdout.write(_("* marks the image on show. Pass --to VERSION_ID or --previous."))

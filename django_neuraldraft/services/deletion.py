"""Deleting image keys: their versions go with them, then the files no other version uses.

Django's own delete cascades to the versions (``on_delete=CASCADE``) and
leaves their originals and renditions in the storage, named by no row; the
admin deletes keys through here instead.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from ..models import ImageKey, ImageVersion, Job
from .history import delete_unused_files


def check_deletable(keys: Iterable[ImageKey]) -> None:
    """Raise ``ValidationError`` if a job of one of ``keys`` is still in flight.

    Deleting the key would only detach such a job (``Job.image_key`` is set
    null): it would run on at Neural Draft, billed, its image stored nowhere.
    Cancelling it on the way is no better: the cancel is a call to the API
    that may fail or only be recorded for later, inside a deletion that must
    then go ahead or roll back. So the editor cancels first, and sees it end.
    """
    busy = sorted(
        Job.objects.in_flight()
        .filter(image_key__in=[key.pk for key in keys])
        .values_list("image_key__key", flat=True)
        .distinct()
    )
    if busy:
        raise ValidationError(
            _("A generation of %(keys)s is still running: cancel it first, then delete.")
            % {"keys": ", ".join(busy)},
            code="in_flight",
        )


def delete_keys(keys: Iterable[ImageKey]) -> None:
    """Delete ``keys`` with their versions, then, once committed, the files no version uses.

    Under the keys' row locks, the lock every write of a key's images takes,
    so no image is bound to a key while it goes; refused by
    :func:`check_deletable`, with nothing changed, while a job is in flight.
    The keys' jobs stay, detached, for the record.
    The files go through :func:`~.history.delete_unused_files`.
    """
    with transaction.atomic():
        locked = list(
            ImageKey.objects.select_for_update()
            .filter(pk__in=[key.pk for key in keys])
            .order_by("pk")
        )
        check_deletable(locked)
        versions = list(
            ImageVersion.objects.filter(image_key__in=locked).select_related("image_key")
        )
        ImageKey.objects.filter(pk__in=[key.pk for key in locked]).delete()
        transaction.on_commit(lambda: delete_unused_files(versions), robust=True)

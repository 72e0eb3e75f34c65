"""Image versions: stored once under their content hash, and which one a key shows."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.core.exceptions import ValidationError
from django.core.files import File
from django.db import transaction
from django.utils.translation import gettext as _

from .. import conf, renditions
from ..downloads import DownloadedImage
from ..exceptions import DownloadError
from ..limits import SOURCE_URL_MAX_LENGTH
from ..models import ImageKey, ImageVersion
from ..signals import image_ready
from ..storage import ConfiguredStorage, delete_file
from .announce import send_on_commit


@contextmanager
def atomic_with_files() -> Iterator[list[str]]:
    """Open a transaction for rows that name files; yield a list for the names of files written.

    If the transaction rolls back, the files go after it, so a failed ingest
    leaves no orphan in the storage. Once it has committed, they stay
    whatever is raised next (an ``on_commit`` callback that fails): a
    committed row names them. Inside a caller's transaction this is a
    savepoint: the files go if it rolls back and stay once it is released,
    since the caller may commit the rows. Django has no hook for the caller's
    rollback, so that one leaves the files behind; their content-addressed
    names make the next ingest of the same image adopt them
    (``docs/lifecycle.rst``).
    """
    written: list[str] = []
    committed = False

    def keep() -> None:
        nonlocal committed
        committed = True

    try:
        with transaction.atomic():
            # Registered first, so it runs before any callback that may raise.
            transaction.on_commit(keep)
            yield written
    except BaseException:
        if not committed:
            _remove(written)
        raise


def _remove(names: list[str]) -> None:
    storage = ConfiguredStorage()
    for name in names:
        delete_file(storage, name)


def source_url(url: str) -> str:
    """``url`` as ImageVersion keeps it: whole if it fits its column, else without its query.

    The query of a signed URL is its token, useless once it has expired;
    :func:`~.jobs.mirror` refuses a URL whose remainder does not fit.
    """
    return url if len(url) <= SOURCE_URL_MAX_LENGTH else url.split("?", 1)[0]


def store_version(
    image_key: ImageKey,
    image: DownloadedImage,
    *,
    written: list[str] | None = None,
    **provenance: Any,
) -> ImageVersion:
    """Save the file under its content hash and create the version row.

    Content-addressed names make a file immutable (cacheable for a year) and
    make a retry after a crash find the file it already saved, instead of
    leaving a second copy. The name of a file this call wrote (not one it
    found) is appended to ``written``, for :func:`atomic_with_files`.
    """
    storage = ConfiguredStorage()
    name = f"{conf.upload_to()}/{image_key.key}/{image.sha256}.{image.extension}"
    url = source_url(image.url)
    if len(url) > SOURCE_URL_MAX_LENGTH:
        raise DownloadError(f"The image URL is longer than {SOURCE_URL_MAX_LENGTH} characters.")
    if storage.exists(name) and storage.size(name) != image.bytes:
        storage.delete(name)
    if not storage.exists(name):
        saved = storage.save(name, File(image.file, name=name))
        if written is not None:
            written.append(saved)
        if saved != name:
            raise DownloadError(f"The storage renamed {name!r} to {saved!r}.")
    provenance.setdefault("source_url", url)
    version = ImageVersion.objects.create(
        image_key=image_key,
        file=name,
        width=image.width,
        height=image.height,
        bytes=image.bytes,
        mime_type=image.mime_type,
        sha256=image.sha256,
        dominant_color=image.dominant_color,
        **provenance,
    )
    renditions.schedule(version)
    return version


def offer(image_key: ImageKey, version: ImageVersion) -> None:
    """Put a finished ``version`` on show, or keep it for review when ``AUTO_PUBLISH`` is off.

    Called where :func:`bind` would be, under the key's row lock: the one
    place that decides whether a new image needs an editor's word first.
    """
    if conf.auto_publish():
        bind(image_key, version)
        return
    version.candidate = True
    version.save(update_fields=["candidate"])


def bind(image_key: ImageKey, version: ImageVersion) -> None:
    image_key.current = version
    image_key.save(update_fields=["current", "updated_at"])
    send_on_commit(image_ready, ImageVersion, image_key=image_key, version=version)


def rollback(image_key: ImageKey, version: ImageVersion) -> None:
    """Show an older ``version`` of ``image_key`` again; no file is copied or deleted."""
    if version.image_key_id != image_key.pk:
        raise ValidationError(_("That image version belongs to another key."), code="wrong_key")
    if version.candidate:
        raise ValidationError(
            _("That image is awaiting review: publish it instead."), code="candidate"
        )
    with transaction.atomic():
        bind(image_key, version)

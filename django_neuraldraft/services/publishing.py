"""What an editor decides about a key's images: upload one of their own, publish or discard.

Each function takes the key's row lock, the one lock every write of a key's
images takes (see :mod:`.ingest`), and changes nothing when it refuses.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import IO, Any, BinaryIO, cast

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from .. import conf
from ..choices import ImageOrigin
from ..downloads import IMAGE_FORMATS, DownloadedImage, inspect_image
from ..exceptions import APIError, DownloadTooLargeError, MalformedResponseError, ServerError
from ..models import ImageKey, ImageVersion, Job
from .generation import reserve_credits
from .history import delete_unused_files
from .remote import get_client
from .versions import atomic_with_files, bind, store_version

#: The API refuses uploads over 10 MB (POST /images, multipart mode).
API_UPLOAD_LIMIT = 10 * 1024 * 1024

#: Credits the API charges for registering an uploaded image (``image_register``).
UPLOAD_CREDITS = 1

_CHUNK = 64 * 1024
_MAX_SOURCE_URL = 2000


def upload(image_key: ImageKey, file: IO[bytes], *, requested_by: Any = None) -> ImageVersion:
    """Register ``file`` with Neural Draft under the key and put it on show as a new version.

    The bytes pass the checks of a download (size, type, pixels) before
    anything is sent, so a bad file raises a ``DownloadError`` and leaves the
    API, the storage and the database untouched; so does a spent daily budget,
    with ``CreditBudgetExceededError``. Otherwise the upload's credit is
    reserved in the budget's ledger before the call, under the lock generations
    take, and given back only if Neural Draft refuses the file with a 4xx
    answer: after no answer or a 5xx it may have been charged. An upload goes
    on show whatever ``AUTO_PUBLISH`` says: the editor chose it. API errors
    propagate as the client raised them; a failure once the file is stored
    removes it after the rollback, as an ingest does.
    """
    with verified_file(file) as image:
        spend = reserve_credits(
            UPLOAD_CREDITS,
            _(
                "An upload costs %(cost)d credit and today's budget has %(left)d left. Raise "
                "NEURALDRAFT['DAILY_CREDIT_BUDGET'] or try again tomorrow."
            ),
        )
        try:
            remote = get_client().upload_image(
                image_key.key,
                cast(BinaryIO, image.file),
                filename=f"{image_key.key}.{image.extension}",
                content_type=image.mime_type,
            )
        except APIError as err:
            if not isinstance(err, ServerError):
                spend.delete()
            raise
        if not remote.url.startswith(("https://", "http://")) or len(remote.url) > _MAX_SOURCE_URL:
            raise MalformedResponseError("The uploaded image's URL is not a usable http(s) URL.")
        image.file.seek(0)
        with atomic_with_files() as written:
            image_key = ImageKey.objects.select_for_update().get(pk=image_key.pk)
            version = store_version(
                image_key,
                replace(image, url=remote.url),
                written=written,
                origin=ImageOrigin.UPLOADED,
                credits_charged=UPLOAD_CREDITS,
                created_by=requested_by,
            )
            bind(image_key, version)
    return version


@contextmanager
def verified_file(file: IO[bytes]) -> Iterator[DownloadedImage]:
    """Copy ``file`` to a temporary file under the byte cap and yield it verified.

    The same checks :func:`~django_neuraldraft.downloads.fetch_image` applies
    to a download, for bytes that come from an editor instead of a URL.
    """
    limit = min(conf.max_download_bytes(), API_UPLOAD_LIMIT)
    digest = hashlib.sha256()
    size = 0
    with tempfile.TemporaryFile(prefix="neuraldraft-upload-") as copy:
        for block in iter(lambda: file.read(_CHUNK), b""):
            size += len(block)
            if size > limit:
                raise DownloadTooLargeError(
                    _("The file is larger than %(limit)d bytes, the most an upload may be.")
                    % {"limit": limit}
                )
            digest.update(block)
            copy.write(block)
        image_format, width, height, color = inspect_image(
            copy, max_pixels=conf.max_pixels(), source=_("The uploaded file")
        )
        mime_type, extension = IMAGE_FORMATS[image_format]
        copy.seek(0)
        yield DownloadedImage(
            file=copy,
            url="",
            bytes=size,
            sha256=digest.hexdigest(),
            mime_type=mime_type,
            extension=extension,
            width=width,
            height=height,
            dominant_color=color,
        )


def publish(version: ImageVersion) -> ImageVersion:
    """Put a candidate on show: one atomic switch of the key's pointer, ``image_ready`` sent.

    Publishing the version already on show changes nothing; any other
    version that is not a candidate raises ``ValidationError`` (roll back to it instead).
    """
    with transaction.atomic():
        image_key = ImageKey.objects.select_for_update().get(pk=version.image_key_id)
        version = ImageVersion.objects.get(pk=version.pk)
        if not version.candidate:
            if image_key.current_id == version.pk:
                return version
            raise ValidationError(
                _("That image is not awaiting review; use it again from the history instead."),
                code="not_candidate",
            )
        version.candidate = False
        version.save(update_fields=["candidate"])
        bind(image_key, version)
    return version


def discard(version: ImageVersion) -> None:
    """Delete a candidate, and its files once the deletion has committed.

    A file another version still uses (the same bytes bound twice) is kept:
    :func:`~.history.delete_unused_files` decides, after the commit. Its job
    stays, for the record (the credits it cost are in the budget's ledger),
    but is detached from the key, as cleanup does: a finished job without a
    version is what the sweep ingests again, and the editor said no to that
    image. Discarding a candidate that is gone already changes nothing; a
    version that is not a candidate raises ``ValidationError``.
    """
    with transaction.atomic():
        ImageKey.objects.select_for_update().filter(pk=version.image_key_id).first()
        current = ImageVersion.objects.select_related("image_key").filter(pk=version.pk).first()
        if current is None:
            return
        if not current.candidate:
            raise ValidationError(
                _("Only an image awaiting review can be discarded."), code="not_candidate"
            )
        if current.job_id:
            Job.objects.filter(pk=current.job_id).update(image_key=None)
        current.delete()
        transaction.on_commit(lambda: delete_unused_files([current]), robust=True)

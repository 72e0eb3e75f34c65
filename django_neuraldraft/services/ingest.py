"""Bringing a finished image into the site's storage: download, verify, store, bind, once."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

from django.db import transaction
from django.utils import timezone

from .. import conf
from ..choices import ImageOrigin, JobStatus
from ..downloads import DownloadedImage, DownloadPolicy, fetch_image
from ..exceptions import (
    DownloadRefusedError,
    DownloadTooLargeError,
    InvalidImageError,
    NeuralDraftError,
)
from ..models import ImageKey, ImageVersion, Job
from .generation import get_or_create_image_key
from .jobs import announce_failure
from .remote import TRANSIENT_ERRORS, get_client
from .versions import bind, offer, store_version


def ingest(job: Job) -> ImageVersion:
    """Download the finished image of ``job``, store it and bind it to its key, once.

    The download happens before any lock is taken; storing and binding happen
    under a lock on the key's row, the one lock every write of a key's images
    takes (``pull`` too), so when two workers race only one stores a file and
    creates the version, and the other returns it. A refused or
    invalid image fails the job, leaves the key's current image in place and
    raises the ``DownloadError``.
    """
    existing = ImageVersion.objects.filter(job=job).first()
    if existing is not None:
        return existing
    if job.status != JobStatus.COMPLETED or job.image_key_id is None:
        raise ValueError(f"Job {job.pk} has no finished image to ingest (status {job.status}).")
    try:
        with fetch((job.result or {}).get("url", "")) as image:
            with transaction.atomic():
                image_key = ImageKey.objects.select_for_update().get(pk=job.image_key_id)
                existing = ImageVersion.objects.filter(job=job).first()
                if existing is not None:
                    return existing
                version = store_version(
                    image_key,
                    image,
                    origin=ImageOrigin.GENERATED,
                    job=job,
                    prompt=job.params.get("prompt", ""),
                    style=job.params.get("style", ""),
                    aspect_ratio=job.params.get("aspect_ratio", ""),
                    credits_charged=job.credits,
                    created_by_id=job.requested_by_id,
                )
                offer(image_key, version)
    except TRANSIENT_ERRORS:
        raise
    except NeuralDraftError as err:
        _reject_result(job, err)
        raise
    return version


def fetch(url: str) -> AbstractContextManager[DownloadedImage]:
    return fetch_image(
        get_client(),
        url,
        policy=DownloadPolicy(conf.allowed_download_hosts()),
        max_bytes=conf.max_download_bytes(),
        max_pixels=conf.max_pixels(),
    )


def _reject_result(job: Job, err: NeuralDraftError) -> None:
    code = next(
        (code for cls, code in _REJECTION_CODES.items() if isinstance(err, cls)), "download_failed"
    )
    changed = Job.objects.filter(
        pk=job.pk, status=JobStatus.COMPLETED, image_version__isnull=True
    ).update(
        status=JobStatus.FAILED,
        error_code=code,
        error_message=str(err),
        updated_at=timezone.now(),
    )
    if changed:
        job.refresh_from_db()
        announce_failure(job)


#: Job ``error_code`` for each reason a finished image is not kept, most specific first.
_REJECTION_CODES = {
    InvalidImageError: "invalid_image",
    DownloadTooLargeError: "image_too_large",
    DownloadRefusedError: "download_refused",
}


def pull(key: str, *, requested_by: Any = None) -> ImageVersion:
    """Adopt the image Neural Draft holds for ``key`` (``GET /images/{key}``) and bind it.

    Pulling an image that is already the key's current one changes nothing.
    """
    image_key = get_or_create_image_key(key)
    remote = get_client().get_image(key)
    with fetch(remote.url) as image:
        with transaction.atomic():
            image_key = ImageKey.objects.select_for_update().get(pk=image_key.pk)
            same = image_key.versions.filter(sha256=image.sha256).first()
            if same is not None:
                if image_key.current_id != same.pk:
                    bind(image_key, same)
                return same
            version = store_version(
                image_key, image, origin=ImageOrigin.PULLED, created_by=requested_by
            )
            bind(image_key, version)
    return version

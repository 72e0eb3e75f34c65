"""Bringing a finished image into the site's storage: download, verify, store, bind, once."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

from django.db import InterfaceError, OperationalError

from .. import conf
from ..choices import ImageOrigin, JobStatus
from ..client import DOWNLOAD_SECONDS
from ..downloads import DownloadedImage, DownloadPolicy, fetch_image
from ..exceptions import (
    DownloadRefusedError,
    DownloadTooLargeError,
    InvalidImageError,
    NeuralDraftError,
)
from ..keys import validate_image_key
from ..models import ImageKey, ImageVersion, Job
from .jobs import reject_result
from .remote import TRANSIENT_ERRORS, get_client
from .versions import atomic_with_files, bind, offer, store_version


def ingest(job: Job, *, max_seconds: float = DOWNLOAD_SECONDS) -> ImageVersion:
    """Download the finished image of ``job``, store it and bind it to its key, once.

    The download ends within ``max_seconds``, so a caller that owes the job a
    deadline (``poll_once``: JOB_TIMEOUT) passes the time it has left.

    The download happens before any lock is taken; storing and binding happen
    under a lock on the key's row, the one lock every write of a key's images
    takes (``pull`` too), so when two workers race only one stores a file and
    creates the version, and the other returns it. Whatever goes wrong other
    than a transient error (a refused URL, an invalid image, a Pillow or
    database error, anything unexpected) fails the job with an ``error_code``
    through :func:`~.jobs.reject_result`, leaves the key's current image in
    place, removes any file it wrote, and is raised. An error raised after
    the commit (a site's ``on_commit`` callback) is raised too, but what
    committed stays: the version, its file and the completed job.
    """
    existing = ImageVersion.objects.filter(job=job).first()
    if existing is not None:
        return existing
    if job.status != JobStatus.COMPLETED or job.image_key_id is None:
        raise ValueError(f"Job {job.pk} has no finished image to ingest (status {job.status}).")
    url = (job.result or {}).get("url", "")
    try:
        with fetch(url, max_seconds=max_seconds) as image, atomic_with_files() as written:
            image_key = ImageKey.objects.select_for_update().get(pk=job.image_key_id)
            existing = ImageVersion.objects.filter(job=job).first()
            if existing is not None:
                return existing
            version = store_version(
                image_key,
                image,
                written=written,
                origin=ImageOrigin.GENERATED,
                job=job,
                prompt=job.params.get("prompt", ""),
                style=job.params.get("style", ""),
                aspect_ratio=job.params.get("aspect_ratio", ""),
                credits_charged=job.credits,
                created_by_id=job.requested_by_id,
            )
            offer(image_key, version)
    except (*TRANSIENT_ERRORS, OperationalError, InterfaceError):
        # Worth another try: the network or the database, not the image.
        raise
    except Exception as err:
        reject_result(job, _rejection_code(err), str(err))
        raise
    return version


def fetch(
    url: str, *, max_seconds: float = DOWNLOAD_SECONDS
) -> AbstractContextManager[DownloadedImage]:
    return fetch_image(
        get_client(),
        url,
        policy=DownloadPolicy(conf.allowed_download_hosts()),
        max_bytes=conf.max_download_bytes(),
        max_pixels=conf.max_pixels(),
        max_seconds=max_seconds,
    )


#: Job ``error_code`` for each reason a finished image is not kept, most specific first.
_REJECTION_CODES = (
    (InvalidImageError, "invalid_image"),
    (DownloadTooLargeError, "image_too_large"),
    (DownloadRefusedError, "download_refused"),
    (NeuralDraftError, "download_failed"),
)


def _rejection_code(err: Exception) -> str:
    return next((code for cls, code in _REJECTION_CODES if isinstance(err, cls)), "ingest_failed")


def pull(key: str, *, requested_by: Any = None) -> ImageVersion:
    """Adopt the image Neural Draft holds for ``key`` (``GET /images/{key}``) and bind it.

    Pulling an image that is already the key's current one changes nothing;
    a key Neural Draft does not know is not created here either.
    """
    validate_image_key(key)
    remote = get_client().get_image(key)
    with fetch(remote.url) as image, atomic_with_files() as written:
        image_key, _created = ImageKey.objects.get_or_create(key=key)
        image_key = ImageKey.objects.select_for_update().get(pk=image_key.pk)
        same = image_key.versions.filter(sha256=image.sha256).first()
        if same is not None:
            if image_key.current_id != same.pk:
                bind(image_key, same)
            return same
        version = store_version(
            image_key,
            image,
            written=written,
            origin=ImageOrigin.PULLED,
            created_by=requested_by,
        )
        bind(image_key, version)
    return version

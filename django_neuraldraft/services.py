"""The only module where models meet the Neural Draft client.

Admin actions, management commands, tasks and site code call these functions;
none of them talks HTTP or moves a job's state by itself. Every function is
safe to call again with the same arguments: a retried task, a second worker or
a double click ends in the same state as one call.
"""

from __future__ import annotations

import logging
import random
import uuid
from datetime import datetime, time, timedelta
from functools import lru_cache
from typing import Any

from django.core.exceptions import ValidationError
from django.core.files import File
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from . import conf
from .choices import ImageOrigin, JobStatus, JobType
from .client import Job as RemoteJob, NeuralDraftClient
from .client.types import ASPECT_RATIOS
from .downloads import DownloadedImage, DownloadPolicy, fetch_image
from .exceptions import (
    ConflictError,
    CreditBudgetExceededError,
    DownloadError,
    DownloadRefusedError,
    DownloadTooLargeError,
    InvalidImageError,
    NeuralDraftError,
    RateLimitedError,
    ServerError,
    TransportError,
)
from .keys import validate_image_key
from .models import ImageKey, ImageVersion, Job
from .signals import image_ready, job_failed
from .storage import ConfiguredStorage

logger = logging.getLogger(__name__)

#: Errors worth trying again later: the client already retried them a few times.
TRANSIENT_ERRORS = (ServerError, RateLimitedError, TransportError)

#: A 429 is never slept through: it comes back as RateLimitedError at once, and
#: a task reschedules itself after the Retry-After instead of holding a worker.
_RETRY_AFTER_LIMIT = 0.0


def get_client() -> NeuralDraftClient:
    """Return the process's client for the current settings, reusing its connections."""
    return _client_for(conf.api_key(), conf.base_url(), conf.request_timeout(), conf.max_retries())


@lru_cache(maxsize=4)
def _client_for(
    api_key: str, base_url: str, timeout: tuple[float, float], max_retries: int
) -> NeuralDraftClient:
    return NeuralDraftClient(
        api_key=api_key,
        base_url=base_url,
        timeout=timeout,
        max_retries=max_retries,
        max_retry_after=_RETRY_AFTER_LIMIT,
    )


def get_or_create_image_key(key: str) -> ImageKey:
    """Return the ``ImageKey`` for ``key``, created if new; ``ValidationError`` for a bad key."""
    validate_image_key(key)
    image_key, _created = ImageKey.objects.get_or_create(key=key)
    return image_key


def request_generation(
    image_key: ImageKey | str,
    *,
    prompt: str | None = None,
    style: str | None = None,
    aspect_ratio: str | None = None,
    requested_by: Any = None,
) -> Job:
    """Ask for a new image for ``image_key`` and return its local Job.

    Arguments left out come from the key, then from the settings. The Job row
    is committed, with its idempotency key, before the submit task is queued.
    While a generation of the key is in flight, that job is returned instead
    of paying for a second one. Raises ``ValidationError`` for bad input and
    ``CreditBudgetExceededError`` when the daily budget would be passed.
    """
    if isinstance(image_key, str):
        image_key = get_or_create_image_key(image_key)
    params = _generation_params(image_key, prompt, style, aspect_ratio)
    cost = conf.credits_per_image()
    with transaction.atomic():
        # Serialises requests for one key on databases with row locks; the
        # partial unique constraint covers the others.
        ImageKey.objects.select_for_update().filter(pk=image_key.pk).first()
        running = image_key.jobs.in_flight().first()
        if running is not None:
            return running
        _check_budget(cost)
        try:
            with transaction.atomic():
                job = Job.objects.create(
                    image_key=image_key,
                    type=JobType.IMAGE_GENERATE,
                    params=params,
                    idempotency_key=uuid.uuid4().hex,
                    credits=cost,
                    requested_by=requested_by,
                )
        except IntegrityError:
            return image_key.jobs.in_flight().get()
        transaction.on_commit(lambda: _enqueue("submit_generation", job.pk))
    return job


def _generation_params(
    image_key: ImageKey, prompt: str | None, style: str | None, aspect_ratio: str | None
) -> dict[str, str]:
    prompt = (prompt if prompt is not None else image_key.prompt).strip()
    if not prompt:
        raise ValidationError(
            _("The image key %(key)s has no prompt; write one first.") % {"key": image_key.key},
            code="empty_prompt",
        )
    aspect_ratio = aspect_ratio or image_key.aspect_ratio or conf.default_aspect_ratio()
    if aspect_ratio not in ASPECT_RATIOS:
        raise ValidationError(
            _("%(ratio)r is not an aspect ratio Neural Draft knows; use one of %(choices)s.")
            % {"ratio": aspect_ratio, "choices": ", ".join(ASPECT_RATIOS)},
            code="aspect_ratio",
        )
    params = {"prompt": prompt, "aspect_ratio": aspect_ratio, "key": image_key.key}
    style = (style if style is not None else image_key.style) or conf.default_style()
    if style:
        params["style"] = style
    return params


def _check_budget(cost: int) -> None:
    budget = conf.daily_credit_budget()
    if budget is None:
        return
    midnight = timezone.make_aware(datetime.combine(timezone.localdate(), time.min))
    spent = Job.objects.credits_spent_since(midnight)
    if spent + cost > budget:
        raise CreditBudgetExceededError(
            _(
                "This generation costs %(cost)d credits; %(spent)d of today's budget of "
                "%(budget)d are committed already. Raise NEURALDRAFT['DAILY_CREDIT_BUDGET'] "
                "or try again tomorrow."
            )
            % {"cost": cost, "spent": spent, "budget": budget}
        )


def _enqueue(task_name: str, job_pk: int, **options: Any) -> None:
    from . import tasks

    getattr(tasks, task_name).apply_async((job_pk,), **options)


def submit(job: Job) -> Job:
    """Send an unsubmitted job to Neural Draft and mirror the answer.

    Re-sending is safe: the stored idempotency key makes the API answer with
    the job it created the first time. An error the API will repeat (a bad
    request, no credits) fails the job; a transient one is raised for the
    caller to retry later.
    """
    job.refresh_from_db()
    if job.remote_id or job.status != JobStatus.PENDING:
        return job
    params = job.params
    try:
        remote = get_client().create_image(
            params["prompt"],
            style=params.get("style"),
            aspect_ratio=params.get("aspect_ratio"),
            key=params.get("key"),
            idempotency_key=job.idempotency_key,
        )
    except TRANSIENT_ERRORS:
        raise
    except NeuralDraftError as err:
        fail(job, err.code or "submit_failed", err.detail or str(err))
        return job
    initial_delay, _longest = conf.poll_schedule()
    Job.objects.filter(pk=job.pk, remote_id__isnull=True).update(remote_id=remote.id)
    _mirror(job, remote, next_poll_at=timezone.now() + timedelta(seconds=initial_delay))
    return job


def refresh_job(job: Job) -> Job:
    """Fetch the job from Neural Draft and mirror it; state only ever moves forward."""
    remote = get_client().get_job(job.remote_id)
    Job.objects.filter(pk=job.pk).update(last_polled_at=timezone.now(), polls=F("polls") + 1)
    job.polls += 1
    _mirror(job, remote)
    return job


def _mirror(job: Job, remote: RemoteJob, **extra: Any) -> None:
    fields: dict[str, Any] = {
        "type": remote.type,
        "progress": remote.progress if remote.progress is not None else job.progress,
        "message": remote.message or "",
        "steps": [
            {"name": step.name, "completed": step.completed, "active": step.active}
            for step in remote.steps
        ],
        "result": dict(remote.result) if remote.result is not None else None,
        "raw": dict(remote.raw),
        "remote_created_at": remote.created_at,
        "remote_updated_at": remote.updated_at,
        **extra,
    }
    status = remote.status
    if remote.error is not None:
        fields.update(error_code=remote.error.code, error_message=remote.error.message)
    if status == JobStatus.COMPLETED and remote.type == JobType.IMAGE_GENERATE:
        url = (remote.result or {}).get("url")
        if not isinstance(url, str) or not url:
            status = JobStatus.FAILED
            fields.update(
                error_code="missing_result",
                error_message=_("Neural Draft reported the job completed but gave no image URL."),
            )
    if status in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED):
        fields["finished_at"] = timezone.now()
        fields["next_poll_at"] = None
    moved = Job.objects.advance(job.pk, status, **fields)
    job.refresh_from_db()
    if moved and job.status == JobStatus.FAILED:
        _announce_failure(job)


def fail(job: Job, code: str, message: str) -> None:
    """Mark an unfinished job failed locally, e.g. after giving up on it."""
    if Job.objects.advance(
        job.pk,
        JobStatus.FAILED,
        error_code=code,
        error_message=message,
        finished_at=timezone.now(),
        next_poll_at=None,
    ):
        job.refresh_from_db()
        _announce_failure(job)


def _announce_failure(job: Job) -> None:
    logger.warning(
        "Neural Draft job %s failed: %s %s",
        job.remote_id or job.pk,
        job.error_code,
        job.error_message,
    )
    transaction.on_commit(lambda: job_failed.send(sender=Job, job=job))


def schedule_next_poll(job: Job) -> float:
    """Record when ``job`` should be polled next and return the delay in seconds.

    The delay grows by half with each poll, from ``POLL_INITIAL`` to
    ``POLL_MAX``, with ±20% jitter so that jobs submitted together do not
    poll together forever.
    """
    initial, longest = conf.poll_schedule()
    delay = min(longest, initial * 1.5 ** max(job.polls - 1, 0)) * random.uniform(0.8, 1.2)
    postpone_poll(job, delay)
    return delay


def postpone_poll(job: Job, seconds: float) -> None:
    """Move the next poll of ``job`` out by ``seconds``, e.g. to honour a ``Retry-After``."""
    job.next_poll_at = timezone.now() + timedelta(seconds=seconds)
    Job.objects.filter(pk=job.pk).update(next_poll_at=job.next_poll_at)


def give_up_if_overdue(job: Job) -> bool:
    """Fail ``job`` if it has run longer than ``JOB_TIMEOUT``; return whether it did."""
    limit = conf.job_timeout()
    if timezone.now() - job.created_at <= timedelta(seconds=limit):
        return False
    fail(
        job,
        "timed_out",
        _("Gave up after %(seconds)d seconds without a result.") % {"seconds": limit},
    )
    return True


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
        with _fetch(job.result["url"]) as image:
            with transaction.atomic():
                image_key = ImageKey.objects.select_for_update().get(pk=job.image_key_id)
                existing = ImageVersion.objects.filter(job=job).first()
                if existing is not None:
                    return existing
                version = _store_version(
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
                _bind(image_key, version)
    except TRANSIENT_ERRORS:
        raise
    except NeuralDraftError as err:
        _reject_result(job, err)
        raise
    return version


def _fetch(url: str):
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
        _announce_failure(job)


#: Job ``error_code`` for each reason a finished image is not kept, most specific first.
_REJECTION_CODES = {
    InvalidImageError: "invalid_image",
    DownloadTooLargeError: "image_too_large",
    DownloadRefusedError: "download_refused",
}


def _store_version(image_key: ImageKey, image: DownloadedImage, **provenance: Any) -> ImageVersion:
    """Save the file under its content hash and create the version row.

    Content-addressed names make a file immutable (cacheable for a year) and
    make a retry after a crash find the file it already saved, instead of
    leaving a second copy.
    """
    storage = ConfiguredStorage()
    name = f"{conf.upload_to()}/{image_key.key}/{image.sha256}.{image.extension}"
    if storage.exists(name) and storage.size(name) != image.bytes:
        storage.delete(name)
    if not storage.exists(name):
        saved = storage.save(name, File(image.file, name=name))
        if saved != name:
            raise DownloadError(f"The storage renamed {name!r} to {saved!r}.")
    return ImageVersion.objects.create(
        image_key=image_key,
        file=name,
        width=image.width,
        height=image.height,
        bytes=image.bytes,
        mime_type=image.mime_type,
        sha256=image.sha256,
        dominant_color=image.dominant_color,
        source_url=image.url,
        **provenance,
    )


def _bind(image_key: ImageKey, version: ImageVersion) -> None:
    image_key.current = version
    image_key.save(update_fields=["current", "updated_at"])
    transaction.on_commit(
        lambda: image_ready.send(sender=ImageVersion, image_key=image_key, version=version)
    )


def cancel(job: Job) -> Job:
    """Cancel ``job`` at Neural Draft if it was sent, locally if not; a finished job stays."""
    job.refresh_from_db()
    if job.is_terminal:
        return job
    if not job.remote_id:
        Job.objects.advance(job.pk, JobStatus.CANCELLED, finished_at=timezone.now())
        job.refresh_from_db()
        return job
    try:
        remote = get_client().cancel_job(job.remote_id)
    except ConflictError:
        return refresh_job(job)
    _mirror(job, remote)
    return job


def pull(key: str, *, requested_by: Any = None) -> ImageVersion:
    """Adopt the image Neural Draft holds for ``key`` (``GET /images/{key}``) and bind it.

    Pulling an image that is already the key's current one changes nothing.
    """
    image_key = get_or_create_image_key(key)
    remote = get_client().get_image(key)
    with _fetch(remote.url) as image:
        with transaction.atomic():
            image_key = ImageKey.objects.select_for_update().get(pk=image_key.pk)
            same = image_key.versions.filter(sha256=image.sha256).first()
            if same is not None:
                if image_key.current_id != same.pk:
                    _bind(image_key, same)
                return same
            version = _store_version(
                image_key, image, origin=ImageOrigin.PULLED, created_by=requested_by
            )
            _bind(image_key, version)
    return version


def rollback(image_key: ImageKey, version: ImageVersion) -> None:
    """Show an older ``version`` of ``image_key`` again; no file is copied or deleted."""
    if version.image_key_id != image_key.pk:
        raise ValidationError(_("That image version belongs to another key."), code="wrong_key")
    with transaction.atomic():
        _bind(image_key, version)


def generate(
    key: str,
    *,
    prompt: str | None = None,
    style: str | None = None,
    aspect_ratio: str | None = None,
    alt_text: str | None = None,
) -> Job:
    """Create ``key`` if needed, remember its prompt, and ask for an image.

    The one call site code needs: ``django_neuraldraft.generate("hero.background",
    prompt="...")``. Returns the Job; the image is bound when the pipeline finishes.
    """
    image_key = get_or_create_image_key(key)
    changed = {
        name: value
        for name, value in {
            "prompt": prompt,
            "style": style,
            "aspect_ratio": aspect_ratio,
            "alt_text": alt_text,
        }.items()
        if value is not None and getattr(image_key, name) != value
    }
    if changed:
        for name, value in changed.items():
            setattr(image_key, name, value)
        image_key.full_clean()
        image_key.save(update_fields=[*changed, "updated_at"])
    return request_generation(image_key)

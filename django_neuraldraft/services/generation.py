"""Asking Neural Draft for an image: validate, record the Job, then send it once."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, time, timedelta
from typing import Any

from celery import current_app
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from kombu.exceptions import OperationalError as KombuOperationalError

from .. import conf
from ..choices import JobStatus, JobType
from ..client.types import ASPECT_RATIOS
from ..exceptions import BrokerUnavailableError, CreditBudgetExceededError, NeuralDraftError
from ..keys import validate_image_key
from ..models import ImageKey, Job
from .jobs import fail, mirror
from .remote import TRANSIENT_ERRORS, get_client

logger = logging.getLogger(__name__)


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


def credits_left_today() -> int | None:
    """Credits of ``DAILY_CREDIT_BUDGET`` not yet committed today; ``None`` without a budget."""
    budget = conf.daily_credit_budget()
    if budget is None:
        return None
    return max(0, budget - _credits_spent_today())


def _credits_spent_today() -> int:
    midnight = timezone.make_aware(datetime.combine(timezone.localdate(), time.min))
    return Job.objects.credits_spent_since(midnight)


def _check_budget(cost: int) -> None:
    budget = conf.daily_credit_budget()
    if budget is None:
        return
    spent = _credits_spent_today()
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
    """Queue a task for a committed job; ``BrokerUnavailableError`` if the broker is down.

    The job is in the database either way, and ``sweep_stale_jobs`` queues
    what was never sent, so the error says so instead of a bare kombu error.
    """
    try:
        current_app.send_task(f"neuraldraft.{task_name}", (job_pk,), **options)
    except (KombuOperationalError, OSError) as err:
        error = BrokerUnavailableError(job_pk, task_name, err)
        logger.warning("%s", error)
        raise error from err


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
    mirror(job, remote, next_poll_at=timezone.now() + timedelta(seconds=initial_delay))
    return job


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

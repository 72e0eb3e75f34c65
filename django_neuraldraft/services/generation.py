"""Asking Neural Draft for an image: validate everything, record the Job, then send it once."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, time, timedelta
from typing import Any

from celery import current_app
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from kombu.exceptions import OperationalError as KombuOperationalError

from .. import conf, limits
from ..choices import JobStatus, JobType
from ..client.types import ASPECT_RATIOS
from ..exceptions import BrokerUnavailableError, CreditBudgetExceededError, NeuralDraftError
from ..keys import validate_image_key
from ..models import CreditSpend, ImageKey, Job
from ..poll_schedule import HISTORY_SIZE, first_poll_delay
from .chains import new_token
from .jobs import fail, mirror, note_failure, permanent_error_code, valid_remote_id
from .remote import TRANSIENT_ERRORS, get_client

logger = logging.getLogger(__name__)

#: Key of the PostgreSQL advisory lock that serialises budget checks.
_BUDGET_LOCK_ID = 0x6E64_6275_6467  # "ndbudg"


def get_or_create_image_key(key: str) -> ImageKey:
    """Return the ``ImageKey`` for ``key``, created if new; ``ValidationError`` for a bad key."""
    validate_image_key(key)
    image_key, _created = ImageKey.objects.get_or_create(key=key)
    return image_key


def _check_text(value: Any, field: str, limit: int) -> None:
    if not isinstance(value, str):
        raise ValidationError(
            _("%(field)s must be text.") % {"field": field}, code=f"invalid_{field}"
        )
    if "\x00" in value:
        raise ValidationError(
            _("%(field)s contains a NUL character.") % {"field": field}, code="null_characters"
        )
    if len(value) > limit:
        raise ValidationError(
            _("%(field)s has %(length)d characters; at most %(limit)d are allowed.")
            % {"field": field, "length": len(value), "limit": limit},
            code=f"{field}_too_long",
        )


def _check_prompt(prompt: Any, key: str) -> str:
    _check_text(prompt, "prompt", limits.PROMPT_MAX_LENGTH)
    prompt = prompt.strip()
    if not prompt:
        raise ValidationError(
            _("The image key %(key)s has no prompt; write one first.") % {"key": key},
            code="empty_prompt",
        )
    return prompt


def _check_aspect_ratio(aspect_ratio: Any) -> None:
    if aspect_ratio not in ASPECT_RATIOS:
        raise ValidationError(
            _("%(ratio)r is not an aspect ratio Neural Draft knows; use one of %(choices)s.")
            % {"ratio": aspect_ratio, "choices": ", ".join(ASPECT_RATIOS)},
            code="aspect_ratio",
        )


def generation_params(
    image_key: ImageKey, prompt: str | None, style: str | None, aspect_ratio: str | None
) -> dict[str, str]:
    """What will be sent for ``image_key``, validated; nothing is written here.

    The arguments given, else the key's fields, else the site defaults: the one
    rule, which ``manifest`` also plans with.
    """
    prompt = _check_prompt(prompt if prompt is not None else image_key.prompt, image_key.key)
    aspect_ratio = aspect_ratio or image_key.aspect_ratio or conf.default_aspect_ratio()
    _check_aspect_ratio(aspect_ratio)
    params = {"prompt": prompt, "aspect_ratio": aspect_ratio, "key": image_key.key}
    style = (style if style is not None else image_key.style) or conf.default_style()
    if style:
        _check_text(style, "style", limits.STYLE_MAX_LENGTH)
        params["style"] = style
    return params


def _existing_or_new_key(key: ImageKey | str) -> ImageKey:
    """The key's row if it exists, else an unsaved one: validating must not create it."""
    if isinstance(key, ImageKey):
        return key
    validate_image_key(key)
    return ImageKey.objects.filter(key=key).first() or ImageKey(key=key)


def request_generation(
    image_key: ImageKey | str,
    *,
    prompt: str | None = None,
    style: str | None = None,
    aspect_ratio: str | None = None,
    requested_by: Any = None,
) -> Job:
    """Ask for a new image for ``image_key`` and return its local Job.

    Arguments left out come from the key, then from the settings. Everything
    is validated before anything is written: a refused call (``ValidationError``
    for bad input, ``CreditBudgetExceededError`` when the daily budget would be
    passed) leaves no key, no job and sends nothing. The Job row is committed,
    with its idempotency key, before the submit task is queued. While a
    generation of the key is in flight, that job is returned instead of paying
    for a second one.
    """
    image_key = _existing_or_new_key(image_key)
    params = generation_params(image_key, prompt, style, aspect_ratio)
    cost = conf.credits_per_image()
    with transaction.atomic():
        if image_key.pk is None:
            image_key, _created = ImageKey.objects.get_or_create(key=image_key.key)
        # Serialises requests for one key on databases with row locks; the
        # partial unique constraint covers the others.
        ImageKey.objects.select_for_update().filter(pk=image_key.pk).first()
        running = image_key.jobs.in_flight().first()
        if running is not None:
            return running
        _check_budget(
            cost,
            _(
                "This generation costs %(cost)d credits; %(spent)d of today's budget of "
                "%(budget)d are committed already. Raise NEURALDRAFT['DAILY_CREDIT_BUDGET'] "
                "or try again tomorrow."
            ),
        )
        token = new_token()
        try:
            with transaction.atomic():
                job = Job.objects.create(
                    image_key=image_key,
                    type=JobType.IMAGE_GENERATE,
                    params=params,
                    idempotency_key=uuid.uuid4().hex,
                    credits=cost,
                    requested_by=requested_by,
                    chain_token=token,
                    chain_due_at=timezone.now(),
                )
        except IntegrityError:
            return image_key.jobs.in_flight().get()
        transaction.on_commit(lambda: _enqueue("submit_generation", job.pk, token))
    return job


def credits_left_today() -> int | None:
    """Credits of ``DAILY_CREDIT_BUDGET`` not yet committed today; ``None`` without a budget."""
    budget = conf.daily_credit_budget()
    if budget is None:
        return None
    return max(0, budget - _credits_spent_today())


def _credits_spent_today() -> int:
    """Today's ledger, and the credits of the jobs Neural Draft has not accepted yet.

    A job reserves its credits from the transaction that creates it; the one
    that stores its remote id writes its ledger row (see :func:`submit`). The
    reservations are read first, so a job accepted between the two reads is
    counted twice rather than missed.
    """
    midnight = timezone.make_aware(datetime.combine(timezone.localdate(), time.min))
    reserved = Job.objects.credits_reserved()
    return reserved + CreditSpend.objects.credits_since(midnight)


def _serialise_budget_checks() -> None:
    """Hold, until the transaction ends, the lock every budget check takes first.

    Without it, requesters that read the credits spent at the same moment all
    see room for one more and all create a job or reserve an upload.
    PostgreSQL takes a transaction-scoped advisory lock; SQLite takes its
    single write lock, which a write statement acquires even when it matches
    no row.
    """
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_BUDGET_LOCK_ID])
        elif connection.vendor == "sqlite":
            table = connection.ops.quote_name(Job._meta.db_table)
            cursor.execute(f"UPDATE {table} SET id = id WHERE 0")


def _check_budget(cost: int, refusal: str) -> None:
    """Raise ``CreditBudgetExceededError`` if ``cost`` would pass today's budget.

    The caller records the credits before its transaction ends, while the lock
    taken here is still held. ``refusal`` is the error's text, formatted with
    ``cost``, ``spent``, ``budget`` and ``left``.
    """
    budget = conf.daily_credit_budget()
    if budget is None:
        return
    _serialise_budget_checks()
    spent = _credits_spent_today()
    if spent + cost > budget:
        raise CreditBudgetExceededError(
            refusal
            % {"cost": cost, "spent": spent, "budget": budget, "left": max(0, budget - spent)}
        )


def reserve_credits(cost: int, refusal: str) -> CreditSpend:
    """Check ``cost`` against today's budget and write it to the ledger, committed at once.

    For credits no job reserves: an upload's. The row is committed before the
    API call, in a transaction of its own, so the budget lock is not held over
    the call and every later check counts it. The caller deletes the row if
    the call is refused. Called inside a transaction, the lock is held, and
    the row stays invisible to other checks, until that one ends.
    ``refusal`` is as for :func:`_check_budget`.
    """
    with transaction.atomic():
        _check_budget(cost, refusal)
        return CreditSpend.objects.create(credits=cost)


def _enqueue(task_name: str, job_pk: int, token: str, **options: Any) -> None:
    """Queue a task for a committed job; ``BrokerUnavailableError`` if the broker is down.

    The job is in the database either way, and ``sweep_stale_jobs`` restarts
    the chain of a job nobody follows, so the error says so instead of a bare
    kombu error.
    """
    try:
        current_app.send_task(f"neuraldraft.{task_name}", (job_pk,), {"token": token}, **options)
    except (KombuOperationalError, OSError) as err:
        error = BrokerUnavailableError(job_pk, task_name, err)
        logger.warning("%s", error)
        raise error from err


def submit(job: Job) -> Job:
    """Send an unsubmitted job to Neural Draft and mirror the answer.

    Re-sending is safe: the stored idempotency key makes the API answer with
    the job it created the first time. An error the API will repeat (a bad
    request, no credits, a malformed answer) fails the job; a transient one is
    recorded in ``last_error`` and raised for the caller to retry later. A job
    cancelled before it was sent is not sent; a cancel that arrived while it
    was being sent is delivered to Neural Draft by
    :func:`~django_neuraldraft.services.poll_once`. Neural Draft charges the
    job when it accepts it, so the transaction that stores the remote id also
    writes the job's credits to the budget's ledger.
    """
    job.refresh_from_db()
    if job.remote_id or job.status != JobStatus.PENDING:
        return job
    if not Job.objects.start_sending(job.pk):
        job.refresh_from_db()
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
    except TRANSIENT_ERRORS as err:
        note_failure(job, err)
        raise
    except NeuralDraftError as err:
        fail(job, permanent_error_code(err, "submit_failed"), str(err))
        return job
    if not valid_remote_id(remote.id):
        fail(
            job,
            "malformed_response",
            _("Neural Draft answered with a job id that is not one: %(id)r.")
            % {"id": remote.id[:80]},
        )
        return job
    try:
        with transaction.atomic():
            if Job.objects.filter(pk=job.pk, remote_id__isnull=True).update(remote_id=remote.id):
                CreditSpend.objects.create(job=job, credits=job.credits)
    except IntegrityError:
        fail(
            job,
            "malformed_response",
            _("Neural Draft answered with the id of another job: %(id)s.") % {"id": remote.id},
        )
        return job
    job.refresh_from_db()
    if job.is_terminal:
        _stop_orphan(job, remote.id)
        return job
    initial, longest = conf.poll_schedule()
    safety_net = conf.webhook_safety_poll()
    # The safety net sets the first poll by itself: no history to read then.
    recent = Job.objects.recent_durations(HISTORY_SIZE) if safety_net is None else []
    first_poll = first_poll_delay(recent, initial=initial, longest=longest, safety_net=safety_net)
    mirror(job, remote, next_poll_at=timezone.now() + timedelta(seconds=first_poll))
    return job


def _stop_orphan(job: Job, remote_id: str) -> None:
    """The job ended (timed out) while it was being sent: its remote job must not run on."""
    try:
        get_client().cancel_job(remote_id)
    except NeuralDraftError as err:
        logger.warning(
            "Could not cancel remote job %s of ended job %s: %s", remote_id, job.pk, err
        )


def _validate_key_fields(values: dict[str, Any]) -> None:
    if values.get("prompt") is not None:
        _check_text(values["prompt"], "prompt", limits.PROMPT_MAX_LENGTH)
    if values.get("style") is not None:
        _check_text(values["style"], "style", limits.STYLE_MAX_LENGTH)
    if values.get("aspect_ratio"):
        _check_aspect_ratio(values["aspect_ratio"])
    if values.get("alt_text") is not None:
        _check_text(values["alt_text"], "alt_text", limits.ALT_TEXT_MAX_LENGTH)


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
    prompt="...")``. Returns the Job; the image is bound when the pipeline
    finishes. Every argument is validated before anything is written, and a
    refused generation (bad input, budget) leaves the key as it was.
    """
    values = {"prompt": prompt, "style": style, "aspect_ratio": aspect_ratio, "alt_text": alt_text}
    image_key = _existing_or_new_key(key)
    _validate_key_fields(values)
    changed = {
        name: value
        for name, value in values.items()
        if value is not None and getattr(image_key, name) != value
    }
    for name, value in changed.items():
        setattr(image_key, name, value)
    generation_params(image_key, None, None, None)
    image_key.full_clean(validate_unique=False)
    with transaction.atomic():
        stored, _created = ImageKey.objects.get_or_create(key=image_key.key)
        if changed:
            for name, value in changed.items():
                setattr(stored, name, value)
            stored.save(update_fields=[*changed, "updated_at"])
        return request_generation(stored)

"""Neural Draft webhook deliveries: their signature, their record, and what they set off.

A delivery is only a hint that a job may have ended. Its body is hostile
input: it is verified, bounded and stored, and the one thing taken from it is
a job id, which makes us ask the API (``services.poll_once``) what happened.
See docs/webhooks.rst.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from kombu.exceptions import OperationalError as KombuOperationalError

from . import conf, services
from .choices import WebhookOutcome
from .models import Job, WebhookEvent
from .tasks import process_webhook

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Neural-Draft-Signature"
DELIVERY_HEADER = "X-Neural-Draft-Delivery"
IMAGE_GENERATED = "image.generated"
#: Headers never stored: a name holding one of these words may carry a
#: credential of the site, a proxy or a cloud (``Authorization``, ``Cookie``,
#: ``X-Api-Key``, ``X-Auth-Token``, ``X-CSRFToken``, ``X-Amz-Security-Token``...).
SECRET_HEADER_WORDS = re.compile(
    r"auth|cookie|token|secret|key|session|passw|credential|csrf", re.IGNORECASE
)
#: Bounds on what is stored of the headers.
MAX_HEADERS = 50
MAX_HEADER_LENGTH = 500
#: Characters kept of a rejected delivery's body: enough to tell what it was.
#: Anyone can post one, so a whole body would let them grow the table by
#: ``WEBHOOK_MAX_BODY_BYTES`` a request.
REJECTED_BODY_KEPT = 1024
#: Parts of the signature header read (a rotation signs with two secrets).
MAX_SIGNATURE_PARTS = 20
#: What an id from the body must look like before it is stored or looked up.
_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_TYPE = re.compile(r"[a-z0-9_.]{1,64}")


#: The error of a delivery whose job could not be refreshed or its image fetched for now.
UNFINISHED = (
    "Neural Draft could not be reached, or the image not fetched, for now; "
    "the job's polls go on, and the delivery can be replayed."
)


class Unfinished(Exception):
    """A delivery's job could not be refreshed, or its image fetched, for now.

    The delivery is recorded as failed first; its task retries it with the
    backoff of every other transient error, so that a site whose polls are
    only a slow safety net (webhooks on) shows the image a few seconds late
    rather than a safety-net interval late.
    """


#: What processing a delivery may raise that a later try may not: its task retries them.
RETRY_LATER = (*services.TRANSIENT_ERRORS, Unfinished)


#: The error of a delivery stored while its task could not be queued.
NOT_QUEUED = (
    "The Celery broker could not be reached to queue this delivery; "
    "Neural Draft retries it, and it can be replayed."
)


class RejectedError(Exception):
    """A delivery we refuse with a 400: its reason is safe to log and to store."""


class NotQueuedError(Exception):
    """A delivery stored but not queued (the broker is down): answered 503, to be retried."""


@dataclass(frozen=True)
class Envelope:
    """What is used of a delivery's body: its event id, type and job id, each validated."""

    event_id: str
    event_type: str
    job_id: str


def verify(header: str | None, body: bytes, *, now: float | None = None) -> None:
    """Raise :class:`RejectedError` unless ``header`` signs ``body`` with our secret.

    The header is ``t=<unix>,v1=<hex>[,v1=<hex>...]``: the HMAC-SHA256 of
    ``f"{t}."`` + the raw body, keyed with the ``whsec_`` secret. Any ``v1``
    may match (during a rotation the API signs with both secrets); unknown
    keys are ignored. The timestamp must be within ``WEBHOOK_TOLERANCE``.
    """
    secret = conf.webhook_secret()
    if secret is None:
        raise RejectedError("Webhooks are off: NEURALDRAFT['WEBHOOK_SECRET'] is not set.")
    if not header:
        raise RejectedError(f"No {SIGNATURE_HEADER} header.")
    timestamp, signatures = _parse_signature(header)
    if timestamp is None or not signatures:
        raise RejectedError(f"Malformed {SIGNATURE_HEADER} header.")
    now = time.time() if now is None else now
    if abs(now - int(timestamp)) > conf.webhook_tolerance():
        raise RejectedError("The signature's timestamp is outside the tolerance.")
    expected = hmac.new(
        secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256
    ).hexdigest()
    # Every candidate is compared, so the time taken does not tell which one matched.
    matches = [hmac.compare_digest(expected, candidate) for candidate in signatures]
    if not any(matches):
        raise RejectedError("The signature does not match.")


def _parse_signature(header: str) -> tuple[str | None, list[str]]:
    """The header's one timestamp (``None`` unless there is exactly one) and its ``v1`` values.

    A second ``t=`` makes the header ambiguous, whichever one was signed: it
    is malformed. Only the first ``MAX_SIGNATURE_PARTS`` parts are read.
    """
    timestamps, signatures = [], []
    for part in header.split(",", MAX_SIGNATURE_PARTS)[:MAX_SIGNATURE_PARTS]:
        key, _, value = part.strip().partition("=")
        if key == "t":
            timestamps.append(value)
        elif key == "v1" and re.fullmatch(r"[0-9a-f]{64}", value):
            signatures.append(value)
    if len(timestamps) != 1:
        return None, signatures
    (timestamp,) = timestamps
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12):
        return None, signatures
    return timestamp, signatures


def stored_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The delivery's headers as stored: no credentials, bounded in number and length."""
    kept = {}
    for name, value in list(headers.items())[:MAX_HEADERS]:
        if not SECRET_HEADER_WORDS.search(name):
            kept[storable(name[:MAX_HEADER_LENGTH])] = storable(str(value)[:MAX_HEADER_LENGTH])
    return kept


def storable(text: str) -> str:
    """``text`` with its NUL characters replaced, as undecodable bytes are.

    PostgreSQL refuses NUL in text and in jsonb: stored as it came, a
    delivery holding one would fail the request instead of being recorded.
    """
    return text.replace("\x00", "\N{REPLACEMENT CHARACTER}")


def receive(headers: Mapping[str, str], body: bytes) -> tuple[WebhookEvent, str | None]:
    """Judge a delivery, store it with the verdict in one write, queue its processing on commit.

    ``body`` may be one byte longer than ``WEBHOOK_MAX_BODY_BYTES``, which
    tells an oversized body. Returns the stored event and, for a delivery to
    refuse with a 400, the reason; nothing else changes then, and the log
    line names the delivery and the reason, never the secret. With the
    broker down, the commit raises :class:`NotQueuedError` (see :func:`_queue`).
    """
    limit = conf.webhook_max_body_bytes()
    delivery_id = headers.get(DELIVERY_HEADER, "")
    event = WebhookEvent(
        delivery_id=delivery_id if _ID.fullmatch(delivery_id) else "",
        headers=stored_headers(headers),
        body=storable(body[:limit].decode("utf-8", errors="replace")),
        body_truncated=len(body) > limit,
    )
    try:
        if event.body_truncated:
            raise RejectedError(f"The body is over {limit} bytes.")
        verify(headers.get(SIGNATURE_HEADER), body)
        envelope = parse(body)
    except RejectedError as err:
        event.outcome, event.error, event.processed_at = (
            WebhookOutcome.REJECTED,
            str(err),
            timezone.now(),
        )
        if len(event.body) > REJECTED_BODY_KEPT:
            event.body, event.body_truncated = event.body[:REJECTED_BODY_KEPT], True
        event.save()
        logger.warning("Rejected webhook delivery %s: %s", event.delivery_id or event.pk, err)
        return event, str(err)
    event.verified = True
    if isinstance(envelope, str):
        event.outcome, event.error, event.processed_at = (
            WebhookOutcome.IGNORED,
            envelope,
            timezone.now(),
        )
        event.save()
        return event, None
    event.outcome = WebhookOutcome.QUEUED
    event.event_id, event.event_type, event.remote_job_id = (
        envelope.event_id,
        envelope.event_type,
        envelope.job_id,
    )
    event.save()
    transaction.on_commit(lambda: _queue(event.pk))
    return event, None


def _queue(event_pk: int) -> None:
    """Queue a stored delivery's processing; :class:`NotQueuedError` if the broker is down.

    The delivery is marked failed first, so it does not wait as *queued* for
    a task that was never sent: ``neuraldraft_webhook_replay --failed``
    processes it, and so does the API's retry of the delivery.
    """
    try:
        process_webhook.delay(event_pk)
    except (KombuOperationalError, OSError) as err:
        WebhookEvent.objects.filter(pk=event_pk).update(
            outcome=WebhookOutcome.FAILED, error=NOT_QUEUED, processed_at=timezone.now()
        )
        logger.warning("Webhook delivery #%s is stored but not queued: %s", event_pk, err)
        raise NotQueuedError(NOT_QUEUED) from err


def parse(body: bytes) -> Envelope | str:
    """Return the envelope of a verified body, or why it cannot be used.

    The body must be JSON (else :class:`RejectedError`). The docs do not show
    its shape; the sandbox sends ``{"id", "type", "created_at", "data":
    {"job_id", ...}}`` and the job id is also taken from ``data.id``.
    """
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, ValueError) as err:
        raise RejectedError("The body is not JSON.") from err
    except RecursionError:
        return "The body is JSON nested too deeply to read."
    if not isinstance(payload, dict):
        return "The body is not a JSON object."
    event_type = payload.get("type") or payload.get("event")
    if not isinstance(event_type, str) or not _TYPE.fullmatch(event_type):
        return "The body has no event type."
    if event_type != IMAGE_GENERATED:
        return f"Event type {event_type} is not one we act on."
    event_id = payload.get("id")
    if not isinstance(event_id, str) or not _ID.fullmatch(event_id):
        return "The body has no usable event id."
    data = payload.get("data")
    data = data if isinstance(data, dict) else {}
    job_id = data.get("job_id") or data.get("id")
    if not isinstance(job_id, str) or not _ID.fullmatch(job_id):
        return "The body has no usable job id."
    return Envelope(event_id, event_type, job_id)


def process(event_pk: int) -> services.PollOutcome | None:
    """Act on a stored, verified delivery: follow its job once, unless its event already was.

    Nothing in the body is trusted: the job is looked up by id among ours and
    refreshed from the API by :func:`services.poll_once`, which ingests a
    finished image. Returns the poll's outcome, or ``None`` when nothing was
    polled. A poll that met a transient error marks the delivery failed (it
    can be replayed, and its task retries it) and raises :class:`Unfinished`;
    an unexpected error propagates after being recorded.
    """
    event_id = WebhookEvent.objects.filter(pk=event_pk).values_list("event_id", flat=True).first()
    same_event = Q(pk=event_pk) | Q(event_id=event_id) if event_id else Q(pk=event_pk)
    with transaction.atomic():
        # Every delivery of the event is locked in one statement, in the order of
        # their keys: two workers on two deliveries of it wait for each other
        # instead of each holding one lock and waiting for the other's (a deadlock).
        deliveries = list(
            WebhookEvent.objects.select_for_update().filter(same_event).order_by("pk")
        )
        event = next((delivery for delivery in deliveries if delivery.pk == event_pk), None)
        if (
            event is None
            or not event.verified
            or not event.remote_job_id
            or event.outcome == WebhookOutcome.PROCESSED
        ):
            return None
        siblings = [delivery.outcome for delivery in deliveries if delivery.pk != event_pk]
        if WebhookOutcome.PROCESSED in siblings:
            _finish(event, WebhookOutcome.DUPLICATE, "This event was processed already.")
            return None
        job = Job.objects.filter(remote_id=event.remote_job_id).first()
        if job is None:
            _finish(event, WebhookOutcome.IGNORED, "No job of ours has this id.")
            return None
        _finish(event, WebhookOutcome.PROCESSED, "", job=job)
    polls = job.polls
    try:
        outcome = services.poll_once(job)
    except Exception as err:
        _finish(event, WebhookOutcome.FAILED, f"{type(err).__name__}: {err}"[:1000])
        raise
    if outcome.next_poll_in is not None and (outcome.job.is_terminal or job.polls == polls):
        # poll_once met a transient error (logged) and scheduled another try.
        _finish(event, WebhookOutcome.FAILED, UNFINISHED)
        raise Unfinished(UNFINISHED)
    return outcome


def _finish(event: WebhookEvent, outcome: str, error: str, **fields: Any) -> None:
    event.outcome, event.error, event.processed_at = outcome, error, timezone.now()
    for name, value in fields.items():
        setattr(event, name, value)
    event.save(update_fields=["outcome", "error", "processed_at", *fields])


def prepare_replay(event: WebhookEvent) -> bool:
    """Make a stored delivery processable again; return whether there is anything to do.

    Only a verified delivery with a job id can be replayed
    (:class:`RejectedError` otherwise); one that was processed is left alone,
    as :func:`process` would not act on it twice.
    """
    if not event.verified or not event.remote_job_id:
        raise RejectedError(
            "Only a delivery with a verified signature and a job id can be replayed."
        )
    if event.outcome == WebhookOutcome.PROCESSED:
        return False
    WebhookEvent.objects.filter(pk=event.pk).update(
        outcome=WebhookOutcome.QUEUED, error="", replays=F("replays") + 1
    )
    return True


def replay(event: WebhookEvent) -> bool:
    """Queue a stored delivery for processing again, after commit; see :func:`prepare_replay`.

    With the broker down, the delivery is marked failed again and
    :class:`NotQueuedError` raised (from the commit, outside a transaction).
    """
    if not prepare_replay(event):
        return False
    transaction.on_commit(lambda: _queue(event.pk))
    return True

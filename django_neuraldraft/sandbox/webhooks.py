"""Webhook endpoints, deliveries, their signature, and the thread that posts them.

Deliveries follow the docs' retry table (30 s, 2 min, 10 min, 1 h, 6 h, scaled
by ``webhook_retry_scale`` so tests need not wait) and are signed the way the
docs' reference code verifies: HMAC-SHA256 over ``f"{t}." + raw body``.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import logging
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from django_neuraldraft.sandbox.ids import new_id
from django_neuraldraft.sandbox.timestamps import rfc3339

if TYPE_CHECKING:
    from django_neuraldraft.sandbox.store import Store

logger = logging.getLogger("django_neuraldraft.sandbox")

IMAGE_GENERATED = "image.generated"
#: Waits before attempts 2..6. Five delays make six attempts (§12.13).
RETRY_DELAYS = (30, 120, 600, 3600, 21600)
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1
RESPONSE_BODY_LIMIT = 1024
SIGNATURE_HEADER = "X-Neural-Draft-Signature"


@dataclass
class Endpoint:
    """A registered receiver. The secret is shown once, in the create response."""

    id: str
    url: str
    events: list[str]
    is_active: bool
    signing_secret: str
    created_at: float
    last_delivery_status: str | None = None
    last_delivery_at: float | None = None

    def subscribes(self, topic: str) -> bool:
        return self.is_active and topic in self.events

    def to_json(self, *, with_secret: bool = False) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "id": self.id,
            "url": self.url,
            "events": list(self.events),
            "is_active": self.is_active,
            "last_delivery_status": self.last_delivery_status,
            "last_delivery_at": rfc3339(self.last_delivery_at) if self.last_delivery_at else None,
            "created_at": rfc3339(self.created_at),
        }
        if with_secret:
            payload["signing_secret"] = self.signing_secret
        return payload


@dataclass
class Delivery:
    """One event on its way to one endpoint, across all of its attempts."""

    id: str
    endpoint_id: str
    event: str
    #: The exact bytes posted on every attempt (the same event id each time).
    payload: bytes
    created_at: float
    status: str = "pending"
    attempts: int = 0
    response_status: int | None = None
    response_body: str | None = None
    next_retry_at: float | None = None
    delivered_at: float | None = None
    #: Unix times of each attempt, for tests that check the retry spacing.
    attempted_at: list[float] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "endpoint_id": self.endpoint_id,
            "event": self.event,
            "status": self.status,
            "attempts": self.attempts,
            "response_status": self.response_status,
            "response_body": self.response_body,
            "next_retry_at": rfc3339(self.next_retry_at) if self.next_retry_at else None,
            "delivered_at": rfc3339(self.delivered_at) if self.delivered_at else None,
            "created_at": rfc3339(self.created_at),
        }


def image_generated_body(job_id: str, result: dict[str, Any], at: float) -> bytes:
    """The ``image.generated`` event envelope (the docs lost this shape, §12.11)."""
    event = {
        "id": new_id("evt"),
        "type": IMAGE_GENERATED,
        "created_at": rfc3339(at),
        "data": {"job_id": job_id, **result},
    }
    return json.dumps(event, separators=(",", ":")).encode()


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-Neural-Draft-Signature`` value: ``t=<unix>,v1=<hex HMAC-SHA256>``."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


@dataclass(frozen=True)
class Attempt:
    """Everything the dispatcher needs to post one attempt without holding the lock."""

    delivery_id: str
    url: str
    secret: str
    topic: str
    payload: bytes
    generation: int


@dataclass(frozen=True)
class Outcome:
    """How an attempt went: the receiver's status and body, or ``None`` for no answer."""

    status: int | None
    body: str | None

    @property
    def succeeded(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def _connection(url: str, timeout: float) -> http.client.HTTPConnection:
    parts = urlsplit(url)
    if parts.scheme == "https":
        return http.client.HTTPSConnection(parts.hostname or "", parts.port, timeout=timeout)
    return http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout)


def post(connection: http.client.HTTPConnection, attempt: Attempt) -> Outcome:
    """POST one attempt. Redirects are not followed: a 3xx is a failed attempt."""
    parts = urlsplit(attempt.url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "NeuralDraft-Sandbox-Webhooks/1",
        SIGNATURE_HEADER: signature(attempt.secret, int(time.time()), attempt.payload),
        "X-Neural-Draft-Event": attempt.topic,
        "X-Neural-Draft-Delivery": attempt.delivery_id,
    }
    try:
        connection.request("POST", target, body=attempt.payload, headers=headers)
        response = connection.getresponse()
        body = response.read(RESPONSE_BODY_LIMIT).decode("utf-8", errors="replace")
        return Outcome(response.status, body)
    except (OSError, http.client.HTTPException) as err:
        logger.info("Webhook delivery %s to %s failed: %s", attempt.delivery_id, attempt.url, err)
        return Outcome(None, None)


class Dispatcher(threading.Thread):
    """Posts due attempts one at a time, and settles jobs on time so their webhooks fire.

    One thread is enough for a test double; a receiver that hangs delays the
    others by at most ``webhook_timeout``, and :meth:`interrupt` cuts that
    short when the sandbox stops.
    """

    def __init__(self, store: Store, timeout: float, label: str) -> None:
        super().__init__(name=f"neuraldraft-sandbox-{label}", daemon=True)
        self._store = store
        self._timeout = timeout
        self._lock = threading.Lock()
        self._in_flight: http.client.HTTPConnection | None = None

    def run(self) -> None:
        while (attempt := self._store.wait_for_attempt()) is not None:
            connection = _connection(attempt.url, self._timeout)
            with self._lock:
                self._in_flight = connection
            try:
                outcome = post(connection, attempt)
            finally:
                with self._lock:
                    self._in_flight = None
                connection.close()
            self._store.record_attempt(attempt, outcome)

    def interrupt(self) -> None:
        """Abort the attempt in flight, so stopping never waits for a hung receiver."""
        with self._lock:
            sock = self._in_flight.sock if self._in_flight is not None else None
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

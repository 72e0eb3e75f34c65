"""The receiver attacked over real HTTP, and by concurrent workers, on PostgreSQL.

A live server takes the deliveries a hostile or broken sender would make;
PostgreSQL refuses what SQLite accepts (NUL characters) and takes row locks
for real, so these tests run there.
"""

from __future__ import annotations

import http.client
import socket
import threading
import time
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import pytest
from celery import Celery, _state
from django.db import connection
from django.urls import reverse

from django_neuraldraft import webhooks
from django_neuraldraft.choices import WebhookOutcome
from django_neuraldraft.models import WebhookEvent
from tests.webhooks.conftest import SECRET, event_body, sign

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

#: Pairs of deliveries processed at the same moment: before deliveries of one
#: event were locked in one statement, about one pair in four deadlocked.
CONCURRENT_PAIRS = 20


@pytest.fixture
def webhook_secret(postgresql, settings, neuraldraft_settings) -> str:
    settings.NEURALDRAFT = {**neuraldraft_settings, "WEBHOOK_SECRET": SECRET}
    return SECRET


@pytest.fixture
def post(live_server) -> Callable[..., tuple[int, bytes]]:
    """POST raw bytes to the live receiver with the given headers; return status and body."""
    address = urlsplit(live_server.url)

    def send(body: bytes, headers: dict[str, bytes]) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
        try:
            conn.request("POST", reverse("neuraldraft:webhook"), body=body, headers=headers)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    return send


def test_concurrent_deliveries_of_one_event_never_deadlock(webhook_secret):
    errors: list[BaseException] = []

    def process(pk: int, barrier: threading.Barrier) -> None:
        try:
            barrier.wait()
            webhooks.process(pk)
        except Exception as err:
            errors.append(err)
        finally:
            connection.close()

    for pair in range(CONCURRENT_PAIRS):
        deliveries = [
            WebhookEvent.objects.create(
                event_id=f"evt_pair{pair}",
                event_type="image.generated",
                remote_job_id="job_notours",
                verified=True,
                outcome=WebhookOutcome.QUEUED,
            )
            for _ in range(2)
        ]
        barrier = threading.Barrier(2)
        threads = [threading.Thread(target=process, args=(d.pk, barrier)) for d in deliveries]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    assert errors == []
    assert not WebhookEvent.objects.filter(outcome=WebhookOutcome.QUEUED).exists()


def test_a_body_with_a_nul_character_is_stored_and_refused(webhook_secret, post):
    body = b'{"id": "evt_\x00"}'
    status, _answer = post(body, {"X-Neural-Draft-Signature": sign(body).encode()})
    (event,) = WebhookEvent.objects.all()
    assert (status, event.outcome, event.body) == (
        400,
        WebhookOutcome.REJECTED,
        '{"id": "evt_\N{REPLACEMENT CHARACTER}"}',
    )


def test_a_header_with_a_nul_character_is_stored_without_it(webhook_secret, post):
    body = event_body("job_abc123")
    status, _answer = post(
        body, {"X-Neural-Draft-Signature": sign(body).encode(), "X-Trace": b"a\x00b"}
    )
    (event,) = WebhookEvent.objects.all()
    assert (status, event.outcome) == (200, WebhookOutcome.QUEUED)
    assert event.headers["X-Trace"] == "a\N{REPLACEMENT CHARACTER}b"


def test_a_signed_body_nested_too_deeply_is_acknowledged_and_stored(webhook_secret, post):
    body = b"[" * 30000 + b"]" * 30000
    status, _answer = post(body, {"X-Neural-Draft-Signature": sign(body).encode()})
    (event,) = WebhookEvent.objects.all()
    assert (status, event.outcome, event.verified) == (200, WebhookOutcome.IGNORED, True)
    assert event.error == "The body is JSON nested too deeply to read."


def test_no_header_that_may_hold_a_credential_is_stored(webhook_secret, post):
    body = event_body("job_abc123")
    credentials = {
        "Authorization": b"Bearer site",
        "Proxy-Authorization": b"Basic proxy",
        "Cookie": b"sessionid=site",
        "X-Api-Key": b"nd_live_site",
        "X-Auth-Token": b"site",
        "X-CSRFToken": b"site",
        "X-Amz-Security-Token": b"cloud",
        "X-Session-Id": b"site",
    }
    status, _answer = post(
        body, {"X-Neural-Draft-Signature": sign(body).encode(), "X-Trace": b"t", **credentials}
    )
    (event,) = WebhookEvent.objects.all()
    stored = {name.lower() for name in event.headers}
    assert status == 200 and {"x-trace", "x-neural-draft-signature"} <= stored
    assert stored.isdisjoint(name.lower() for name in credentials)


@pytest.mark.parametrize("stale_first", [True, False])
def test_a_signature_header_with_two_timestamps_is_refused(webhook_secret, post, stale_first):
    body = event_body("job_abc123")
    now = int(time.time())
    signed = sign(body, at=now)  # t=<now>,v1=<hex>
    stale = f"t={now - 100_000}"
    header = f"{stale},{signed}" if stale_first else signed.replace(",", f",{stale},", 1)
    status, answer = post(body, {"X-Neural-Draft-Signature": header.encode()})
    (event,) = WebhookEvent.objects.all()
    assert (status, event.outcome, event.verified) == (400, WebhookOutcome.REJECTED, False)
    assert b"Malformed" in answer


@pytest.fixture
def broker_down() -> Iterator[Celery]:
    """Make the live server's threads publish to a loopback port nobody listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        app = Celery("broker-down", set_as_current=False)
        app.conf.update(broker_url=f"redis://127.0.0.1:{sock.getsockname()[1]}//")
        previous = _state.default_app
        app.set_default()
        yield app
        _state.set_default_app(previous)
        app.close()


def test_a_delivery_stored_while_the_broker_is_down_is_failed_and_retried(
    webhook_secret, post, broker_down
):
    body = event_body("job_abc123")
    status, answer = post(body, {"X-Neural-Draft-Signature": sign(body).encode()})
    (event,) = WebhookEvent.objects.all()
    assert (status, event.outcome) == (503, WebhookOutcome.FAILED)
    assert event.error == webhooks.NOT_QUEUED and webhooks.NOT_QUEUED.encode() in answer

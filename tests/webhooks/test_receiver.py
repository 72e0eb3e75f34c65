"""The receiver over Django's test client: every delivery stored, bad ones refused with a 400."""

from __future__ import annotations

import logging
import time

import pytest
from django.urls import reverse

from django_neuraldraft import webhooks
from django_neuraldraft.choices import WebhookOutcome
from django_neuraldraft.models import Job, WebhookEvent

from .conftest import SECRET, event_body, sign

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("webhook_settings")]


def only_event() -> WebhookEvent:
    (event,) = WebhookEvent.objects.all()
    return event


class TestAccepted:
    def test_a_signed_event_is_stored_acknowledged_and_queued_after_commit(
        self, deliver, published, django_capture_on_commit_callbacks
    ):
        body = event_body("job_abc123")
        with django_capture_on_commit_callbacks(execute=True):
            response = deliver(body, **{"X-Neural-Draft-Delivery": "whd_1"})
        assert (response.status_code, response.json()) == (200, {"received": True})
        event = only_event()
        assert event.outcome == WebhookOutcome.QUEUED
        assert (event.event_type, event.remote_job_id, event.delivery_id) == (
            "image.generated",
            "job_abc123",
            "whd_1",
        )
        assert event.event_id.startswith("evt_")
        assert event.body == body.decode() and event.verified
        assert [(m.name, m.args) for m in published] == [
            ("neuraldraft.process_webhook", (event.pk,))
        ]

    def test_the_job_id_is_also_taken_from_data_id(self, deliver):
        assert deliver(event_body("job_x", data={"id": "job_fromid"})).status_code == 200
        assert only_event().remote_job_id == "job_fromid"

    @pytest.mark.parametrize(
        ("body", "reason"),
        [
            (b"[1, 2]", "not a JSON object"),
            (b'{"id": "evt_1", "type": "blog_post.published", "data": {}}', "not one we act on"),
            (b'{"id": "evt_1", "data": {"job_id": "job_1"}}', "no event type"),
            (b'{"type": "image.generated", "data": {"job_id": "job_1"}}', "no usable event id"),
            (b'{"id": "evt_1", "type": "image.generated", "data": {}}', "no usable job id"),
            (
                b'{"id": "evt_1", "type": "image.generated", "data": {"job_id": "../../x"}}',
                "no usable job id",
            ),
        ],
    )
    def test_a_signed_body_we_cannot_use_is_acknowledged_and_stored_not_queued(
        self, deliver, published, body, reason, django_capture_on_commit_callbacks
    ):
        with django_capture_on_commit_callbacks(execute=True):
            response = deliver(body)
        assert response.status_code == 200
        event = only_event()
        assert event.outcome == WebhookOutcome.IGNORED and reason in event.error
        assert event.verified and event.body == body.decode()
        assert published == []

    def test_credentials_are_not_stored_with_the_headers(self, deliver):
        deliver(event_body("job_1"), Authorization="Bearer site-secret", Cookie="sessionid=s")
        headers = {name.lower() for name in only_event().headers}
        assert "x-neural-draft-signature" in headers
        assert not headers & {"authorization", "cookie"}


class TestRefused:
    @pytest.fixture
    def refused(self, deliver, published, caplog):
        def check(body: bytes, reason: str, **kwargs) -> WebhookEvent:
            caplog.set_level(logging.WARNING, logger="django_neuraldraft.webhooks")
            response = deliver(body, **kwargs)
            assert response.status_code == 400
            assert reason in response.json()["error"]
            event = only_event()
            assert event.outcome == WebhookOutcome.REJECTED and reason in event.error
            assert not event.verified and not event.event_id and published == []
            assert Job.objects.count() == 0
            assert reason in caplog.text and SECRET not in caplog.text
            return event

        return check

    def test_a_bad_signature(self, refused):
        refused(event_body("job_1"), "does not match", signed=sign(b"other"))

    def test_no_signature(self, refused):
        refused(event_body("job_1"), "No X-Neural-Draft-Signature", signed="")

    def test_a_stale_timestamp(self, refused):
        body = event_body("job_1")
        refused(body, "tolerance", signed=sign(body, at=time.time() - 3600))

    def test_no_secret_configured(self, refused, settings):
        settings.NEURALDRAFT = {**settings.NEURALDRAFT, "WEBHOOK_SECRET": None}
        refused(event_body("job_1"), "WEBHOOK_SECRET")

    def test_a_body_that_is_not_json(self, refused):
        refused(b"\xffnot json", "not JSON")

    def test_a_body_over_the_limit_is_stored_truncated(self, refused, settings):
        settings.NEURALDRAFT = {**settings.NEURALDRAFT, "WEBHOOK_MAX_BODY_BYTES": 100}
        body = event_body("job_1", padding="x" * 200)
        event = refused(body, "over 100 bytes")
        assert event.body_truncated and len(event.body) == 100

    def test_a_refused_delivery_keeps_only_the_start_of_its_body(self, refused):
        """Anyone can post one: stored whole, each would add up to WEBHOOK_MAX_BODY_BYTES."""
        body = event_body("job_1", padding="x" * 20_000)
        event = refused(body, "does not match", signed=sign(b"other"))
        assert event.body_truncated
        assert event.body == body[: webhooks.REJECTED_BODY_KEPT].decode()


def test_only_post_is_allowed(client, db):
    assert client.get(reverse("neuraldraft:webhook")).status_code == 405
    assert WebhookEvent.objects.count() == 0


def test_csrf_is_not_required(deliver, settings, db):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    body = event_body("job_1")
    response = strict.post(
        reverse("neuraldraft:webhook"),
        data=body,
        content_type="application/json",
        headers={"X-Neural-Draft-Signature": sign(body)},
    )
    assert response.status_code == 200

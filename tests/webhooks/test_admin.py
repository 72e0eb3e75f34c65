"""Deliveries in the admin: listed read-only; replayed only by users allowed to."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from celery import Celery, current_app
from django.contrib.auth.models import Permission, User
from django.urls import reverse

from django_neuraldraft.choices import WebhookOutcome
from django_neuraldraft.models import WebhookEvent

from .conftest import event_body

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("webhook_settings")]

CHANGELIST = "admin:neuraldraft_webhookevent_changelist"


@pytest.fixture
def failed_event() -> WebhookEvent:
    return WebhookEvent.objects.create(
        event_id="evt_1",
        event_type="image.generated",
        remote_job_id="job_1",
        verified=True,
        body=event_body("job_1").decode(),
        outcome=WebhookOutcome.FAILED,
        error="ServerError: 503",
    )


def staff(*codenames: str) -> User:
    user = User.objects.create_user("editor", password="x", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    return user


def test_deliveries_are_listed_and_shown_read_only(admin_client, failed_event):
    listing = admin_client.get(reverse(CHANGELIST))
    assert listing.status_code == 200 and b"evt_1" in listing.content
    page = admin_client.get(
        reverse("admin:neuraldraft_webhookevent_change", args=[failed_event.pk])
    )
    assert page.status_code == 200
    assert b'name="_save"' not in page.content
    assert admin_client.get(reverse("admin:neuraldraft_webhookevent_add")).status_code == 403


def test_replay_queues_the_delivery(
    admin_client, failed_event, published, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            reverse(CHANGELIST),
            {"action": "replay", "_selected_action": [failed_event.pk]},
            follow=True,
        )
    assert "Queued 1 delivery" in response.content.decode()
    failed_event.refresh_from_db()
    assert (failed_event.outcome, failed_event.replays) == (WebhookOutcome.QUEUED, 1)
    assert [m.name for m in published] == ["neuraldraft.process_webhook"]


def test_replay_needs_its_permission(client, failed_event, published):
    client.force_login(staff("view_webhookevent"))
    listing = client.get(reverse(CHANGELIST))
    assert listing.status_code == 200
    assert listing.context["action_form"] is None
    client.post(reverse(CHANGELIST), {"action": "replay", "_selected_action": [failed_event.pk]})
    failed_event.refresh_from_db()
    assert failed_event.outcome == WebhookOutcome.FAILED and published == []


def test_a_user_with_the_permission_sees_the_action(client, failed_event):
    client.force_login(staff("view_webhookevent", "replay_webhookevent"))
    choices = client.get(reverse(CHANGELIST)).context["action_form"].fields["action"].choices
    assert "replay" in [value for value, _label in choices]


@pytest.fixture
def broker_down() -> Iterator[Celery]:
    """Publish to a loopback port that refuses connections, as a web process would."""
    previous = current_app._get_current_object()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        app = Celery("broker-down", set_as_current=False)
        app.conf.update(broker_url=f"redis://127.0.0.1:{sock.getsockname()[1]}//")
        app.set_current()
        yield app
        previous.set_current()
        app.close()


@pytest.mark.django_db(transaction=True)
def test_a_replay_the_broker_cannot_take_is_marked_failed_and_said(
    admin_client, failed_event, broker_down
):
    response = admin_client.post(
        reverse(CHANGELIST),
        {"action": "replay", "_selected_action": [failed_event.pk]},
        follow=True,
    )
    assert "could not be queued" in response.content.decode()
    failed_event.refresh_from_db()
    assert (failed_event.outcome, failed_event.replays) == (WebhookOutcome.FAILED, 1)

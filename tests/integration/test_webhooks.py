"""Webhooks end to end: the sandbox posts to a live server, a real worker binds the image.

Polling is reduced to a one-hour safety net, so the image can only be bound
because the delivery arrived; the job is fetched once, after it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from celery import Celery, _state
from django.db import transaction
from django.urls import reverse

from django_neuraldraft import services
from django_neuraldraft.choices import JobStatus, WebhookOutcome
from django_neuraldraft.models import ImageKey, Job, WebhookEvent
from django_neuraldraft.services.webhooks import register_webhook
from tests.integration.conftest import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def threads_publish_to_redis(redis_celery: Celery) -> Iterator[Celery]:
    """Make the live server's threads publish to Redis too: Celery's current app is per thread."""
    previous = _state.default_app
    redis_celery.set_default()
    yield redis_celery
    _state.set_default_app(previous)


def generated_until_bound(
    endpoint_url: str, settings, start_worker, *, safety_poll: float, waiting_for: str
) -> Job:
    """Register ``endpoint_url``, turn webhooks on, generate ``home.hero`` and wait until bound.

    The job is returned as it is once its image is bound.
    """
    endpoint = register_webhook(endpoint_url)
    settings.NEURALDRAFT = {
        **settings.NEURALDRAFT,
        "WEBHOOK_SECRET": endpoint.signing_secret,
        "WEBHOOK_SAFETY_POLL": safety_poll,
    }
    worker = start_worker(concurrency=2)
    with transaction.atomic():
        job = services.request_generation("home.hero", prompt="A lighthouse in morning fog")
    wait_for(
        lambda: ImageKey.objects.filter(key="home.hero", current__isnull=False).exists(),
        timeout=30,
        describe=f"{waiting_for} to get the image bound",
        workers=(worker,),
    )
    job.refresh_from_db()
    return job


def test_a_delivery_binds_the_image_with_no_poll_before_it(
    sandbox, media_root, live_server, threads_publish_to_redis, start_worker, settings
):
    job = generated_until_bound(
        live_server.url + reverse("neuraldraft:webhook"),
        settings,
        start_worker,
        safety_poll=3600,
        waiting_for="the webhook",
    )
    event = WebhookEvent.objects.get()
    assert job.status == JobStatus.COMPLETED
    assert ImageKey.objects.get(key="home.hero").current.job == job
    assert (event.outcome, event.job, event.remote_job_id) == (
        WebhookOutcome.PROCESSED,
        job,
        job.remote_id,
    )
    (delivery,) = sandbox.deliveries
    assert (delivery.status, delivery.attempts, delivery.response_status) == ("success", 1, 200)
    sandbox.assert_called("GET", f"/v1/jobs/{job.remote_id}", times=1)
    assert job.polls == 1 and job.last_polled_at > event.received_at


def test_a_lost_delivery_still_ends_in_a_bound_image(
    sandbox, media_root, redis_celery, start_worker, settings
):
    job = generated_until_bound(
        "http://127.0.0.1:9/nobody-listens/",
        settings,
        start_worker,
        safety_poll=1,
        waiting_for="the safety-net poll",
    )
    assert job.status == JobStatus.COMPLETED and job.polls >= 1
    assert WebhookEvent.objects.count() == 0
    assert sandbox.deliveries[0].status != "success"

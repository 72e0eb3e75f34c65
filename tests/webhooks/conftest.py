"""Signed deliveries, made the way the sandbox signs them, and a receiver to post them to."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from django.urls import reverse

from django_neuraldraft import services
from django_neuraldraft.models import ImageKey, Job
from django_neuraldraft.sandbox.webhooks import image_generated_body, signature

SECRET = "whsec_" + "t3st" * 8


@pytest.fixture
def webhook_settings(neuraldraft_settings, settings) -> dict[str, Any]:
    settings.NEURALDRAFT = {**neuraldraft_settings, "WEBHOOK_SECRET": SECRET}
    return settings.NEURALDRAFT


def sign(body: bytes, *, secret: str = SECRET, at: float | None = None) -> str:
    return signature(secret, int(time.time() if at is None else at), body)


def event_body(job_id: str, **changes: Any) -> bytes:
    """The sandbox's own ``image.generated`` envelope, with ``changes`` merged in."""
    payload = json.loads(image_generated_body(job_id, {"url": "http://cdn.test/x.png"}, 0))
    payload.update(changes)
    return json.dumps(payload).encode()


@pytest.fixture
def deliver(client) -> Callable[..., Any]:
    """Post ``body`` to the receiver, signed unless ``signed`` gives the header to send."""

    def post(body: bytes, *, signed: str | None = None, **headers: str):
        header = sign(body) if signed is None else signed
        return client.post(
            reverse("neuraldraft:webhook"),
            data=body,
            content_type="application/json",
            headers={"X-Neural-Draft-Signature": header, **headers},
        )

    return post


@pytest.fixture
def finished_job(sandbox, webhook_settings) -> Job:
    """A job completed at the sandbox that we have not polled since submitting it."""
    image_key = ImageKey.objects.create(key="hero.background", prompt="A harbour at dawn")
    job = services.submit(services.request_generation(image_key))
    sandbox.finish_job(job.remote_id)
    return job

"""Assertion helpers and the service-skip rule shared by the test suite."""

from __future__ import annotations

import os
import time
from datetime import datetime, timezone

import pytest

REQUIRE_SERVICES = os.environ.get("NEURALDRAFT_REQUIRE_SERVICES") == "1"


def require_service(available: bool, reason: str) -> None:
    """Skip the calling test when a real service is missing, or fail under CI.

    With ``NEURALDRAFT_REQUIRE_SERVICES=1`` a missing service is a failure, so
    CI can never turn green by skipping the tests that need Redis, PostgreSQL
    or a browser.
    """
    if available:
        return
    if REQUIRE_SERVICES:
        pytest.fail(f"{reason} (NEURALDRAFT_REQUIRE_SERVICES=1 forbids skipping)")
    pytest.skip(reason)


def run_published(published: list, *, deadline: float = 15.0) -> list[str]:
    """Run the published task messages in this process, in order, like a one-slot worker.

    Messages published while running are run too; a message with an ETA waits
    for it. Returns the names of the tasks that ran. Fails the test when the
    queue has not drained within ``deadline`` seconds.
    """
    from celery import current_app

    ran = []
    give_up = time.monotonic() + deadline
    while published:
        message = published.pop(0)
        if message.eta:
            wait = (
                datetime.fromisoformat(message.eta) - datetime.now(timezone.utc)
            ).total_seconds()
            time.sleep(max(0.0, min(wait, give_up - time.monotonic())))
        if time.monotonic() > give_up:
            pytest.fail(f"Tasks still queued after {deadline} s: {ran[-5:]} ... {published[:5]}")
        current_app.tasks[message.name](*message.args, **message.kwargs)
        ran.append(message.name)
    return ran


def create_image_key(
    key: str,
    *,
    file: str | None = None,
    width: int = 1600,
    height: int = 900,
    dominant_color: str = "",
    **fields,
):
    """An ImageKey, with ``file`` (a name only: rendering needs no bytes) as its image on show."""
    from django_neuraldraft.models import ImageKey

    image_key = ImageKey.objects.create(key=key, **fields)
    if file is not None:
        image_key.current = add_version(image_key, file, width, height, dominant_color)
        image_key.save(update_fields=["current", "updated_at"])
    return image_key


def add_version(image_key, file: str, width: int = 1600, height: int = 900, dominant_color=""):
    """An ImageVersion of ``image_key``, not bound: ``image_key.current`` stays as it is."""
    from django_neuraldraft.models import ImageVersion

    return ImageVersion.objects.create(
        image_key=image_key,
        file=file,
        width=width,
        height=height,
        bytes=1000,
        mime_type="image/png",
        sha256="0" * 64,
        dominant_color=dominant_color,
        source_url="https://cdn.neuraldraft.io/tests/image.png",
    )

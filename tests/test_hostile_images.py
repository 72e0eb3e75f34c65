"""Hostile images from the sandbox CDN through the real pipeline: refused, old image kept."""

from __future__ import annotations

import pytest
from django.core.files.storage import storages

from django_neuraldraft import services
from django_neuraldraft.choices import JobStatus
from django_neuraldraft.models import ImageKey, ImageVersion
from django_neuraldraft.sandbox.faults import HOSTILE_IMAGES

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("neuraldraft_settings")]


def generate(sandbox, image_key):
    job = services.submit(services.request_generation(image_key))
    sandbox.finish_job(job.remote_id)
    return services.poll_once(job)


@pytest.mark.parametrize("variant", sorted(HOSTILE_IMAGES))
def test_a_hostile_image_fails_the_job_with_invalid_image(variant, sandbox):
    image_key = ImageKey.objects.create(key="hero", prompt="A quiet harbour", aspect_ratio="1:1")
    old = generate(sandbox, image_key).version
    sandbox.set_fault("hostile_image", count=1, path="/cdn/", variant=variant)
    outcome = generate(sandbox, image_key)
    assert (outcome.job.status, outcome.job.error_code) == (JobStatus.FAILED, "invalid_image")
    assert outcome.version is None
    image_key.refresh_from_db()
    assert image_key.current == old
    assert ImageVersion.objects.count() == 1
    assert storages["default"].exists(old.file.name)

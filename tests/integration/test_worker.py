"""A real Celery worker on the Redis broker takes generations from request to bound image."""

from __future__ import annotations

import hashlib

import pytest
from django.core.files.storage import storages
from django.db import transaction

from django_neuraldraft import services
from django_neuraldraft.choices import JobStatus
from django_neuraldraft.models import ImageKey, ImageVersion, Job
from tests.integration.conftest import stored_files, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

PROMPTS = {
    "home.hero": "A lighthouse in morning fog",
    "about.team": "Five paper boats on a pond",
    "blog.header": "A desk with a typewriter and a cat",
}


def test_a_worker_follows_each_generation_to_a_bound_image(
    sandbox, media_root, redis_celery, start_worker
):
    worker = start_worker(concurrency=2)
    for key, prompt in PROMPTS.items():
        with transaction.atomic():
            services.request_generation(key, prompt=prompt)

    wait_for(
        lambda: ImageKey.objects.filter(key__in=PROMPTS, current__isnull=False).count() == 3,
        timeout=30,
        describe="the worker to bind an image to each of the three keys",
        workers=(worker,),
    )

    storage = storages["default"]
    for image_key in ImageKey.objects.filter(key__in=PROMPTS).select_related("current__job"):
        version = image_key.current
        assert version.job.status == JobStatus.COMPLETED
        assert version.job.image_key_id == image_key.pk
        assert version.prompt == PROMPTS[image_key.key]
        assert storage.exists(version.file.name)
        data = (media_root / version.file.name).read_bytes()
        assert len(data) == version.bytes
        assert hashlib.sha256(data).hexdigest() == version.sha256
    assert ImageVersion.objects.count() == 3
    assert len(stored_files(media_root)) == 3
    assert Job.objects.filter(status=JobStatus.COMPLETED).count() == 3
    assert len(sandbox.assert_called("POST", "/v1/images")) == 3

"""A real worker binds a generated image first, then makes its renditions in a task of its own."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from django_neuraldraft import services
from django_neuraldraft.models import ImageVersion
from tests.integration.conftest import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_a_worker_makes_the_renditions_of_an_ingested_image(
    settings, sandbox, media_root, redis_celery, completed_job, start_worker
):
    settings.NEURALDRAFT = {**settings.NEURALDRAFT, "RENDITION_WIDTHS": (320, 640)}
    version = services.ingest(completed_job("worker.hero", "A lighthouse in the fog"))
    assert version.renditions == []
    worker = start_worker(concurrency=1)

    made = wait_for(
        lambda: (
            ImageVersion.objects.filter(pk=version.pk, chain_token="")
            .exclude(renditions=[])
            .first()
        ),
        timeout=60,
        describe="the worker to make the renditions",
        workers=(worker,),
    )

    assert [(r["format"], r["width"], r["height"]) for r in made.renditions] == [
        ("avif", 640, 360),
        ("avif", 320, 180),
        ("webp", 640, 360),
        ("webp", 320, 180),
        ("jpeg", 640, 360),
        ("jpeg", 320, 180),
    ]
    for rendition in made.renditions:
        data = (media_root / rendition["name"]).read_bytes()
        assert len(data) == rendition["bytes"]
        image = Image.open(io.BytesIO(data))
        assert (image.format, image.size) == (
            rendition["format"].upper(),
            (rendition["width"], rendition["height"]),
        )

"""A real worker binds a generated image first, then makes its renditions in tasks of their own."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.utils import timezone
from PIL import Image

from django_neuraldraft import services, tasks
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


def test_renditions_a_killed_worker_was_making_are_swept_and_finished_without_orphans(
    sandbox, media_root, redis_celery, completed_job, start_worker
):
    version = services.ingest(completed_job("killed.hero", "A lighthouse in a storm"))
    worker = start_worker(concurrency=1)
    wait_for(
        lambda: ImageVersion.objects.filter(pk=version.pk, chain_token__startswith="r").exists(),
        timeout=60,
        describe="the worker to start a step",
        workers=(worker,),
    )

    worker.kill()

    # The step held the chain for the task's time limit; let that pass.
    ImageVersion.objects.filter(pk=version.pk).update(
        chain_due_at=timezone.now() - timedelta(seconds=1)
    )
    assert tasks.sweep_stale_jobs(grace_seconds=0)["renditions"] == 1
    fresh = start_worker(concurrency=1)
    made = wait_for(
        lambda: (
            ImageVersion.objects.filter(pk=version.pk, chain_token="")
            .exclude(renditions=[])
            .first()
        ),
        timeout=120,
        describe="a fresh worker to finish the renditions",
        workers=(fresh,),
    )

    assert len(made.renditions) == 21
    assert made.renditions_error == "" and made.renditions_attempts <= 1
    folder = media_root / made.file.name[: -len(".jpg")]
    assert sorted(str(path.relative_to(media_root)) for path in folder.iterdir()) == sorted(
        rendition["name"] for rendition in made.renditions
    )


def test_on_a_redis_broker_renditions_wait_behind_the_polls(redis_broker, redis_celery):
    import redis

    from django_neuraldraft import renditions

    renditions.send_task(1, "q-token")
    tasks.poll_job.delay(2)
    client = redis.Redis.from_url(redis_broker)
    lowest = "celery\x06\x169"
    assert (client.llen("celery"), client.llen(lowest)) == (1, 1)
    client.close()

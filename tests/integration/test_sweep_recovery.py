"""A worker killed mid-download leaves nothing half-bound, and the sweep finishes its job."""

from __future__ import annotations

import pytest

from django_neuraldraft import services, tasks
from django_neuraldraft.choices import JobStatus
from django_neuraldraft.models import ImageKey, ImageVersion
from django_neuraldraft.sandbox import SandboxServer
from django_neuraldraft.sandbox.recording import RecordedRequest
from tests.integration.conftest import stored_files, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

KEY = "crash.hero"


def in_flight_downloads(sandbox: SandboxServer) -> list[RecordedRequest]:
    """CDN requests the sandbox has received but not answered yet."""
    return [r for r in sandbox.requests if r.path.startswith("/cdn/") and r.status is None]


def test_the_sweep_recovers_an_ingest_killed_mid_download(
    settings, sandbox, media_root, redis_celery, completed_job, start_worker
):
    # No renditions: the sweep would requeue those the killed worker was making.
    settings.NEURALDRAFT = {**settings.NEURALDRAFT, "RENDITION_WIDTHS": ()}
    old = services.ingest(completed_job(KEY, "A red kite over a hill"))
    job = completed_job(KEY, "A red kite over a hill, at night")
    sandbox.set_fault("latency", path="/cdn/", seconds=5.0)
    worker = start_worker(concurrency=1)
    tasks.ingest_job.delay(job.pk)
    wait_for(
        lambda: in_flight_downloads(sandbox),
        timeout=15,
        describe="the worker to start downloading",
        workers=(worker,),
    )

    worker.kill()

    assert not ImageVersion.objects.filter(job=job).exists()
    assert ImageKey.objects.get(key=KEY).current_id == old.pk
    assert stored_files(media_root) == [media_root / old.file.name]
    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED

    sandbox.clear_faults()
    assert tasks.sweep_stale_jobs(grace_seconds=0) == {
        "submit": 0,
        "poll": 0,
        "ingest": 1,
        "renditions": 0,
    }
    fresh = start_worker(concurrency=1)
    image_key = wait_for(
        lambda: ImageKey.objects.filter(key=KEY).exclude(current=old).first(),
        timeout=20,
        describe="a fresh worker to ingest the swept job",
        workers=(fresh,),
    )

    version = ImageVersion.objects.get(job=job)
    assert image_key.current_id == version.pk
    assert ImageVersion.objects.filter(image_key=image_key).count() == 2
    assert stored_files(media_root) == sorted(
        [media_root / old.file.name, media_root / version.file.name]
    )

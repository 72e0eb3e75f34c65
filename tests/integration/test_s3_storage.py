"""Images land in S3 through django-storages' S3 backend, against moto's real HTTP server."""

from __future__ import annotations

import pytest
import requests

from django_neuraldraft import services, tasks
from django_neuraldraft.models import ImageKey, ImageVersion
from tests.integration.conftest import S3Bucket, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def assert_in_bucket(bucket: S3Bucket, version: ImageVersion) -> None:
    head = bucket.client.head_object(Bucket=bucket.name, Key=version.file.name)
    assert head["ContentType"] == "image/png"
    assert head["ContentLength"] == version.bytes
    url = version.file.url
    assert url.startswith(f"{bucket.endpoint_url}/{bucket.name}/{version.file.name}?")
    served = requests.get(url, timeout=10)
    assert served.status_code == 200
    assert len(served.content) == version.bytes


def test_ingest_saves_the_image_in_the_bucket(s3_bucket, completed_job):
    job = completed_job("s3.hero", "A lighthouse drawn in chalk")

    version = services.ingest(job)

    assert version.mime_type == "image/png"
    assert version.file.name.startswith("neuraldraft/s3.hero/")
    assert_in_bucket(s3_bucket, version)
    assert ImageKey.objects.get(key="s3.hero").current_id == version.pk


def test_a_worker_ingests_into_the_same_bucket(
    s3_bucket, completed_job, redis_celery, start_worker
):
    job = completed_job("s3.worker", "A paper crane on a windowsill")
    worker = start_worker(concurrency=1)

    tasks.ingest_job.delay(job.pk)

    image_key = wait_for(
        lambda: ImageKey.objects.filter(key="s3.worker", current__isnull=False).first(),
        timeout=20,
        describe="the worker to ingest into S3",
        workers=(worker,),
    )
    assert_in_bucket(s3_bucket, image_key.current)

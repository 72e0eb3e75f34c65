"""Images land in S3 through django-storages' S3 backend, against moto's real HTTP server."""

from __future__ import annotations

import pytest
import requests
from django.core.files.base import ContentFile
from django.core.files.storage import storages

from django_neuraldraft import services, tasks
from django_neuraldraft.models import ImageKey, ImageVersion
from django_neuraldraft.storage import ConfiguredStorage
from tests.integration.conftest import S3Bucket, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def assert_in_bucket(bucket: S3Bucket, version: ImageVersion) -> None:
    head = bucket.client.head_object(Bucket=bucket.name, Key=version.file.name)
    assert head["ContentType"] == "image/jpeg"
    assert head["ContentLength"] == version.bytes
    url = version.file.url
    assert url.startswith(f"{bucket.endpoint_url}/{bucket.name}/{version.file.name}?")
    served = requests.get(url, timeout=10)
    assert served.status_code == 200
    assert len(served.content) == version.bytes


def test_ingest_saves_the_image_in_the_bucket(s3_bucket, completed_job):
    job = completed_job("s3.hero", "A lighthouse drawn in chalk")

    version = services.ingest(job)

    assert version.mime_type == "image/jpeg"
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


def test_content_addressed_files_are_uploaded_as_immutable(s3_bucket, completed_job):
    job = completed_job("s3.cached", "A kite over a beach")

    version = services.ingest(job)

    head = s3_bucket.client.head_object(Bucket=s3_bucket.name, Key=version.file.name)
    assert head["CacheControl"] == "public, max-age=31536000, immutable"
    assert storages["default"].object_parameters == {}


def test_other_names_and_the_projects_own_cache_control_are_left_alone(s3_bucket, settings):
    storage = ConfiguredStorage()
    storage.save("neuraldraft/notes/readme.txt", ContentFile(b"hello"))
    default = settings.STORAGES["default"]
    options = {**default["OPTIONS"], "object_parameters": {"CacheControl": "no-cache"}}
    settings.STORAGES = {**settings.STORAGES, "default": {**default, "OPTIONS": options}}
    name = storage.save(f"neuraldraft/s3.own/{'a' * 64}.png", ContentFile(b"png"))

    def cache_control(key: str) -> str | None:
        return s3_bucket.client.head_object(Bucket=s3_bucket.name, Key=key).get("CacheControl")

    assert cache_control("neuraldraft/notes/readme.txt") is None
    assert cache_control(name) == "no-cache"

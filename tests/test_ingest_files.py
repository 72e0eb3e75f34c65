"""The files of an ingest, a pull and an upload when something fails around their transaction,
against the sandbox: a rollback leaves no orphan in the storage, and nothing raised after the
commit deletes the file a committed version names."""

from __future__ import annotations

import io

import pytest
from django.db import transaction
from django.db.models.signals import post_save
from PIL import Image

from django_neuraldraft import services
from django_neuraldraft.choices import JobStatus
from django_neuraldraft.models import ImageKey, ImageVersion

pytestmark = [pytest.mark.usefixtures("neuraldraft_settings")]

FOLDER = "neuraldraft/hero.background"


class PurgeFailed(Exception):
    pass


@pytest.fixture
def hero():
    return ImageKey.objects.create(key="hero.background", prompt="A quiet harbour at dawn")


@pytest.fixture
def failing_after_commit():
    """A site's ``post_save`` receiver that queues a plain ``on_commit`` callback that raises:
    the version's row has committed when it does."""

    def purge():
        raise PurgeFailed("the CDN purge API is down")

    def queue_purge(sender, created, **kwargs):
        if created:
            transaction.on_commit(purge)

    post_save.connect(queue_purge, sender=ImageVersion)
    yield
    post_save.disconnect(queue_purge, sender=ImageVersion)


@pytest.fixture
def failing_before_commit():
    """A site's ``post_save`` receiver that raises, once the file is stored."""

    def refuse(sender, **kwargs):
        raise PurgeFailed("the CDN refused the new image")

    post_save.connect(refuse, sender=ImageVersion)
    yield
    post_save.disconnect(refuse, sender=ImageVersion)


def finished(image_key, sandbox):
    job = services.submit(services.request_generation(image_key))
    sandbox.finish_job(job.remote_id)
    return services.refresh_job(job)


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (320, 180), "#336699").save(buffer, "PNG")
    return buffer.getvalue()


@pytest.mark.django_db(transaction=True)
class TestAnErrorAfterTheCommit:
    def test_keeps_the_ingested_version_its_file_and_its_job(
        self, hero, sandbox, empty_storage, failing_after_commit
    ):
        job = finished(hero, sandbox)
        with pytest.raises(PurgeFailed):
            services.ingest(job)
        version = ImageVersion.objects.get(job=job)
        hero.refresh_from_db()
        job.refresh_from_db()
        assert (hero.current, job.status) == (version, JobStatus.COMPLETED)
        assert empty_storage.exists(version.file.name)

    def test_keeps_the_pulled_version_and_its_file(
        self, hero, sandbox, empty_storage, failing_after_commit
    ):
        finished(hero, sandbox)
        with pytest.raises(PurgeFailed):
            services.pull("hero.background")
        hero.refresh_from_db()
        assert empty_storage.exists(hero.current.file.name)


@pytest.mark.django_db
class TestARollback:
    def test_of_an_upload_removes_the_file_it_stored(
        self, hero, sandbox, empty_storage, failing_before_commit
    ):
        with pytest.raises(PurgeFailed):
            services.upload(hero, io.BytesIO(png_bytes()))
        assert not ImageVersion.objects.exists()
        assert empty_storage.listdir(FOLDER) == ([], [])

    def test_of_the_callers_transaction_leaves_a_file_the_next_ingest_adopts(
        self, hero, sandbox, empty_storage
    ):
        """Django has no rollback hook: the file stays, and its hash-based name is reused."""
        job = finished(hero, sandbox)
        with pytest.raises(PurgeFailed), transaction.atomic():
            services.ingest(job)
            raise PurgeFailed("the caller's view failed")
        assert not ImageVersion.objects.exists()
        (orphan,) = empty_storage.listdir(FOLDER)[1]
        version = services.ingest(job)
        assert empty_storage.listdir(FOLDER)[1] == [orphan]
        assert version.file.name == f"{FOLDER}/{orphan}"

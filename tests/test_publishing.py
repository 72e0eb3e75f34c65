"""Review before publishing and editors' uploads, against the sandbox over loopback."""

from __future__ import annotations

import hashlib
import io

import pytest
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.files.storage import storages
from PIL import Image

from django_neuraldraft import services
from django_neuraldraft.alt_text import propose_alt_text
from django_neuraldraft.choices import ImageOrigin
from django_neuraldraft.exceptions import (
    CreditBudgetExceededError,
    DownloadTooLargeError,
    InsufficientCreditsError,
    InvalidImageError,
    TransportError,
)
from django_neuraldraft.models import ImageKey, ImageVersion, Job
from django_neuraldraft.signals import image_ready

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("neuraldraft_settings")]


def png_bytes(width: int = 320, height: int = 180, color: str = "#336699") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture
def hero():
    return ImageKey.objects.create(
        key="hero.background", prompt="A quiet harbour at dawn", aspect_ratio="16:9"
    )


@pytest.fixture
def ready_signals():
    seen = []

    def receive(sender, **kwargs):
        seen.append(kwargs["version"])

    image_ready.connect(receive)
    yield seen
    image_ready.disconnect(receive)


def finished_version(image_key, sandbox):
    job = services.submit(services.request_generation(image_key))
    sandbox.finish_job(job.remote_id)
    return services.poll_once(job).version


class TestReview:
    def test_auto_publish_binds_at_once(self, hero, sandbox):
        version = finished_version(hero, sandbox)
        hero.refresh_from_db()
        assert hero.current == version
        assert not version.candidate

    def test_without_auto_publish_a_finished_image_waits(
        self, hero, sandbox, settings, ready_signals, commit
    ):
        settings.NEURALDRAFT = {**settings.NEURALDRAFT, "AUTO_PUBLISH": False}
        with commit():
            version = finished_version(hero, sandbox)
        hero.refresh_from_db()
        assert hero.current is None
        assert ImageVersion.objects.get(pk=version.pk).candidate
        assert ready_signals == []

    def test_publish_flips_the_pointer_and_announces_it(
        self, hero, sandbox, settings, ready_signals, commit
    ):
        settings.NEURALDRAFT = {**settings.NEURALDRAFT, "AUTO_PUBLISH": False}
        version = finished_version(hero, sandbox)
        with commit():
            services.publish(version)
        hero.refresh_from_db()
        assert hero.current == version
        assert not ImageVersion.objects.get(pk=version.pk).candidate
        assert ready_signals == [version]
        assert services.publish(version) == version  # publishing again changes nothing

    def test_publish_reaches_the_template_tags(self, hero, sandbox, settings, commit, cold_cache):
        from django_neuraldraft import resolver

        settings.NEURALDRAFT = {**settings.NEURALDRAFT, "AUTO_PUBLISH": False}
        with commit():
            version = finished_version(hero, sandbox)
        assert not resolver.resolve(hero.key).ready
        with commit():
            services.publish(version)
        assert resolver.resolve(hero.key).url == version.file.url

    def test_a_candidate_cannot_be_rolled_back_to(self, hero, sandbox, settings):
        settings.NEURALDRAFT = {**settings.NEURALDRAFT, "AUTO_PUBLISH": False}
        version = finished_version(hero, sandbox)
        with pytest.raises(ValidationError):
            services.rollback(hero, version)
        hero.refresh_from_db()
        assert hero.current is None

    def test_discard_deletes_the_row_then_the_file(self, hero, sandbox, settings, commit):
        settings.NEURALDRAFT = {**settings.NEURALDRAFT, "AUTO_PUBLISH": False}
        version = finished_version(hero, sandbox)
        storage = storages["default"]
        with commit():
            services.discard(version)
            assert storage.exists(version.file.name)  # not before the commit
        assert not ImageVersion.objects.filter(pk=version.pk).exists()
        assert not storage.exists(version.file.name)
        services.discard(version)  # gone already: nothing to do

    def test_only_candidates_are_discarded_or_published(self, hero, sandbox):
        version = finished_version(hero, sandbox)
        with pytest.raises(ValidationError):
            services.discard(version)
        older = ImageVersion.objects.get(pk=version.pk)
        newer = finished_version(hero, sandbox)
        assert newer != older
        with pytest.raises(ValidationError):
            services.publish(older)
        hero.refresh_from_db()
        assert hero.current == newer


class TestDiscard:
    def test_the_sweep_never_brings_a_discarded_candidate_back(self, hero, sandbox, settings):
        from django.utils import timezone

        from django_neuraldraft.services.refreshing import refresh_jobs

        settings.NEURALDRAFT = {**settings.NEURALDRAFT, "AUTO_PUBLISH": False}
        version = finished_version(hero, sandbox)
        job = version.job
        services.discard(version)
        later = timezone.now() + timezone.timedelta(days=1)
        assert not Job.objects.without_live_chain(before=later).filter(pk=job.pk).exists()
        refresh_jobs()
        assert not ImageVersion.objects.exists()
        job.refresh_from_db()
        assert job.status == "completed" and job.credits == 40  # kept, for the budget

    def test_the_renditions_a_killed_step_was_writing_go_too(
        self, hero, sandbox, settings, commit
    ):
        settings.NEURALDRAFT = {**settings.NEURALDRAFT, "AUTO_PUBLISH": False}
        version = finished_version(hero, sandbox)
        storage = storages["default"]
        half_written = storage.save(
            f"{version.file.name.rsplit('.', 1)[0]}/160w-q80.webp", ContentFile(b"RIFF")
        )
        ImageVersion.objects.filter(pk=version.pk).update(renditions_writing=[half_written])

        with commit():
            services.discard(version)

        assert not storage.exists(version.file.name)
        assert not storage.exists(half_written)

    def test_a_file_bound_again_before_it_is_deleted_stays(
        self, hero, sandbox, settings, django_capture_on_commit_callbacks
    ):
        """The same image generated again between the discard's commit and its deletion
        of the file binds a version to the content-addressed file it finds."""
        settings.NEURALDRAFT = {**settings.NEURALDRAFT, "AUTO_PUBLISH": False}
        version = finished_version(hero, sandbox)

        with django_capture_on_commit_callbacks() as after_commit:
            services.discard(version)
        again = finished_version(hero, sandbox)
        for callback in after_commit:
            callback()

        assert again.file.name == version.file.name
        assert storages["default"].exists(again.file.name)


class TestUpload:
    def test_upload_registers_checks_and_binds(self, hero, sandbox, admin_user, ready_signals):
        content = png_bytes()
        version = services.upload(hero, io.BytesIO(content), requested_by=admin_user)
        request = sandbox.last_request("POST", "/v1/images")
        assert request.headers["Content-Type"].startswith("multipart/form-data")
        hero.refresh_from_db()
        assert hero.current == version
        assert version.origin == ImageOrigin.UPLOADED
        assert (version.width, version.height, version.mime_type) == (320, 180, "image/png")
        assert version.sha256 == hashlib.sha256(content).hexdigest()
        assert version.credits_charged == 1
        assert version.created_by == admin_user
        with storages["default"].open(version.file.name) as file:
            assert file.read() == content

    @pytest.mark.parametrize(
        ("content", "error"),
        [
            (b"<svg xmlns='http://www.w3.org/2000/svg'/>", InvalidImageError),
            (b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, InvalidImageError),
            (b"\x00" * (11 * 1024 * 1024), DownloadTooLargeError),
        ],
        ids=["not-an-image", "broken-png", "too-large"],
    )
    def test_a_bad_file_changes_nothing(self, hero, sandbox, content, error):
        with pytest.raises(error):
            services.upload(hero, io.BytesIO(content))
        assert sandbox.requests == []
        assert not ImageVersion.objects.exists()
        hero.refresh_from_db()
        assert hero.current is None

    def test_too_many_pixels_is_refused_before_sending(self, hero, sandbox, settings):
        settings.NEURALDRAFT = {**settings.NEURALDRAFT, "MAX_PIXELS": 1000}
        with pytest.raises(InvalidImageError, match="pixels"):
            services.upload(hero, io.BytesIO(png_bytes()))
        assert sandbox.requests == []

    def test_an_api_refusal_changes_nothing(self, hero, sandbox):
        sandbox.set_fault("status", status=402, code="insufficient_credits", method="POST")
        with pytest.raises(InsufficientCreditsError):
            services.upload(hero, io.BytesIO(png_bytes()))
        assert not ImageVersion.objects.exists()


class TestUploadBudget:
    def test_an_upload_counts_against_todays_budget(self, hero, sandbox, settings):
        settings.NEURALDRAFT = {**settings.NEURALDRAFT, "DAILY_CREDIT_BUDGET": 100}
        services.upload(hero, io.BytesIO(png_bytes()))
        assert services.credits_left_today() == 99

    def test_a_spent_budget_refuses_the_upload_before_sending(self, hero, sandbox, settings):
        settings.NEURALDRAFT = {**settings.NEURALDRAFT, "DAILY_CREDIT_BUDGET": 41}
        services.submit(services.request_generation(hero))
        services.upload(hero, io.BytesIO(png_bytes(color="#000000")))
        before = len(sandbox.requests)
        with pytest.raises(CreditBudgetExceededError, match="An upload costs 1 credit"):
            services.upload(hero, io.BytesIO(png_bytes()))
        assert len(sandbox.requests) == before
        assert ImageVersion.objects.count() == 1

    def test_a_generation_after_uploads_sees_them(self, hero, sandbox, settings):
        settings.NEURALDRAFT = {**settings.NEURALDRAFT, "DAILY_CREDIT_BUDGET": 40}
        services.upload(hero, io.BytesIO(png_bytes()))
        with pytest.raises(CreditBudgetExceededError):
            services.request_generation(hero)

    def test_an_upload_neural_draft_refuses_costs_nothing(self, hero, sandbox, settings):
        settings.NEURALDRAFT = {**settings.NEURALDRAFT, "DAILY_CREDIT_BUDGET": 100}
        sandbox.set_fault("status", status=402, code="insufficient_credits", method="POST")
        with pytest.raises(InsufficientCreditsError):
            services.upload(hero, io.BytesIO(png_bytes()))
        assert services.credits_left_today() == 100

    def test_an_upload_whose_answer_was_lost_stays_counted(self, hero, sandbox, settings):
        settings.NEURALDRAFT = {**settings.NEURALDRAFT, "DAILY_CREDIT_BUDGET": 100}
        sandbox.set_fault("drop_response", method="POST", path="/v1/images")
        with pytest.raises(TransportError):
            services.upload(hero, io.BytesIO(png_bytes()))
        assert not ImageVersion.objects.exists()
        assert services.credits_left_today() == 99


class TestAltTextProposal:
    @pytest.mark.parametrize(
        ("prompt", "proposal"),
        [
            ("", ""),
            ("a quiet harbour at dawn", "A quiet harbour at dawn"),
            ("  a quiet   harbour. Photorealistic, 35mm.", "A quiet harbour"),
            ("word " * 60, ("Word " + "word " * 23).rstrip() + "…"),
        ],
    )
    def test_first_sentence_tidied(self, prompt, proposal):
        assert propose_alt_text(prompt) == proposal

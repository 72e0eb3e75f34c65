"""Services against the sandbox over loopback: request, submit, mirror, ingest, cancel, pull."""

from __future__ import annotations

import hashlib
import logging
from datetime import timedelta

import pytest
import requests
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.files.storage import InMemoryStorage, storages
from django.db import connection
from django.forms import modelform_factory
from django.utils import timezone

from django_neuraldraft import limits, services
from django_neuraldraft.choices import ImageOrigin, JobStatus
from django_neuraldraft.exceptions import (
    CreditBudgetExceededError,
    DownloadRefusedError,
    DownloadTooLargeError,
    InvalidImageError,
    NotFoundError,
    ServerError,
)
from django_neuraldraft.models import CreditSpend, ImageKey, ImageVersion, Job
from django_neuraldraft.poll_schedule import HISTORY_SHARE
from django_neuraldraft.signals import image_ready, job_failed
from django_neuraldraft.testing import run_sandbox

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("neuraldraft_settings")]


@pytest.fixture
def hero():
    return ImageKey.objects.create(
        key="hero.background", prompt="A quiet harbour at dawn", aspect_ratio="16:9"
    )


@pytest.fixture
def received():
    """Signals sent during the test, as (signal name, kwargs) pairs."""
    seen = []

    def on_ready(sender, **kwargs):
        seen.append(("image_ready", kwargs))

    def on_failed(sender, **kwargs):
        seen.append(("job_failed", kwargs))

    image_ready.connect(on_ready)
    job_failed.connect(on_failed)
    yield seen
    image_ready.disconnect(on_ready)
    job_failed.disconnect(on_failed)


def submitted(image_key, sandbox) -> Job:
    job = services.request_generation(image_key)
    return services.submit(job)


def completed(image_key, sandbox, **options) -> Job:
    job = services.submit(services.request_generation(image_key, **options))
    sandbox.finish_job(job.remote_id)
    return services.refresh_job(job)


def stored(version: ImageVersion) -> bytes:
    with storages["default"].open(version.file.name) as file:
        return file.read()


class TestRequestGeneration:
    def test_job_is_written_before_anything_is_sent(self, hero, sandbox, published):
        job = services.request_generation(hero, requested_by=None)
        assert job.status == JobStatus.PENDING
        assert job.remote_id is None
        assert len(job.idempotency_key) == 32
        assert job.params == {
            "prompt": "A quiet harbour at dawn",
            "aspect_ratio": "16:9",
            "key": "hero.background",
        }
        assert job.credits == 40
        assert sandbox.requests == []

    def test_submit_task_is_queued_on_commit(
        self, hero, published, django_capture_on_commit_callbacks
    ):
        with django_capture_on_commit_callbacks(execute=True):
            job = services.request_generation(hero)
        assert [(task.name, task.args) for task in published] == [
            ("neuraldraft.submit_generation", (job.pk,))
        ]

    def test_asking_again_while_in_flight_returns_the_running_job(self, hero):
        first = services.request_generation(hero)
        assert services.request_generation(hero, prompt="Something else") == first
        assert Job.objects.count() == 1

    def test_arguments_win_over_the_key_and_defaults_fill_the_rest(self, settings):
        settings.NEURALDRAFT = {**settings.NEURALDRAFT, "DEFAULT_STYLE": "watercolour"}
        job = services.request_generation("team.photo", prompt="Five people", aspect_ratio="1:1")
        assert job.params == {
            "prompt": "Five people",
            "aspect_ratio": "1:1",
            "key": "team.photo",
            "style": "watercolour",
        }

    @pytest.mark.parametrize(
        ("key", "options", "code"),
        [
            ("Hero/Background", {"prompt": "x"}, "invalid"),
            ("hero", {"prompt": "   "}, "empty_prompt"),
            ("hero", {"prompt": "x", "aspect_ratio": "2:1"}, "aspect_ratio"),
        ],
    )
    def test_bad_input_is_refused_and_changes_nothing(self, key, options, code, sandbox):
        with pytest.raises(ValidationError) as excinfo:
            services.request_generation(key, **options)
        assert excinfo.value.code == code
        assert not Job.objects.exists()
        assert sandbox.requests == []

    def test_daily_budget_refuses_before_any_api_call(self, settings, sandbox):
        settings.NEURALDRAFT = {**settings.NEURALDRAFT, "DAILY_CREDIT_BUDGET": 80}
        services.request_generation("a", prompt="one")
        services.request_generation("b", prompt="two")
        with pytest.raises(CreditBudgetExceededError, match="40 credits; 80 of today's budget"):
            services.request_generation("c", prompt="three")
        assert Job.objects.count() == 2
        assert sandbox.requests == []

    def test_generate_remembers_the_prompt_on_the_key(self):
        job = services.generate("about.team", prompt="Five people", alt_text="Our team")
        image_key = ImageKey.objects.get(key="about.team")
        assert (image_key.prompt, image_key.alt_text) == ("Five people", "Our team")
        assert job.image_key == image_key

    def test_package_exposes_generate(self):
        import django_neuraldraft

        assert django_neuraldraft.generate is services.generate


class TestSubmit:
    def test_mirrors_the_remote_job_with_the_stored_idempotency_key(self, hero, sandbox):
        job = submitted(hero, sandbox)
        assert job.remote_id.startswith("job_")
        assert job.status == JobStatus.PENDING
        assert job.next_poll_at is not None
        assert job.raw["id"] == job.remote_id
        (post,) = sandbox.assert_called("POST", "/v1/images", times=1)
        assert post.headers["Idempotency-Key"] == job.idempotency_key
        assert post.json == {
            "prompt": "A quiet harbour at dawn",
            "aspect_ratio": "16:9",
            "key": "hero.background",
        }

    def test_the_first_poll_waits_for_most_of_what_the_latest_jobs_took(
        self, hero, sandbox, settings
    ):
        settings.NEURALDRAFT = {**settings.NEURALDRAFT, "POLL_INITIAL": 2, "POLL_MAX": 30}
        started = timezone.now() - timedelta(hours=1)
        for n, seconds in enumerate([20, 25, 22, 21, 24]):
            Job.objects.create(
                status=JobStatus.COMPLETED,
                idempotency_key=f"earlier-{n}",
                remote_created_at=started,
                remote_updated_at=started + timedelta(seconds=seconds),
            )
        before = timezone.now()
        job = submitted(hero, sandbox)
        waits = (job.next_poll_at - before).total_seconds()
        assert HISTORY_SHARE * 20 - 1 <= waits <= HISTORY_SHARE * 20 + 1

    def test_submitting_twice_sends_once(self, hero, sandbox):
        job = submitted(hero, sandbox)
        services.submit(job)
        sandbox.assert_called("POST", "/v1/images", times=1)

    def test_a_dropped_response_still_makes_exactly_one_remote_job(self, hero, sandbox):
        sandbox.set_fault("drop_response", count=1, method="POST", path="/v1/images")
        job = submitted(hero, sandbox)
        assert len(sandbox.jobs) == 1
        assert job.remote_id in sandbox.jobs
        first, second = sandbox.assert_called("POST", "/v1/images", times=2)
        assert first.headers["Idempotency-Key"] == second.headers["Idempotency-Key"]

    def test_a_short_5xx_storm_is_ridden_out(self, hero, sandbox):
        sandbox.set_fault("status", status=503, count=2, path="/v1/images")
        assert submitted(hero, sandbox).remote_id

    def test_a_long_5xx_storm_leaves_the_job_pending_for_a_later_retry(self, hero, sandbox):
        sandbox.set_fault("status", status=500, path="/v1/images")
        job = services.request_generation(hero)
        with pytest.raises(ServerError):
            services.submit(job)
        job.refresh_from_db()
        assert (job.status, job.remote_id, job.failed_attempts) == (JobStatus.PENDING, None, 1)
        assert "500" in job.last_error

    def test_a_refusal_fails_the_job_and_frees_the_key(self, hero, sandbox, received):
        sandbox.set_fault("status", status=402, code="insufficient_credits", count=1)
        job = submitted(hero, sandbox)
        assert job.status == JobStatus.FAILED
        assert job.error_code == "insufficient_credits"
        assert services.request_generation(hero) != job


class TestRefreshJob:
    def test_completed_job_is_mirrored(self, hero, sandbox):
        job = completed(hero, sandbox)
        assert job.status == JobStatus.COMPLETED
        assert job.progress == 100
        assert job.result["url"].startswith(sandbox.origin + "/cdn/")
        assert job.finished_at is not None
        assert job.next_poll_at is None
        assert job.polls == 1

    def test_state_never_moves_backwards(self, hero, sandbox):
        job = completed(hero, sandbox)
        Job.objects.filter(pk=job.pk).update(status=JobStatus.CANCELLED)
        assert services.refresh_job(job).status == JobStatus.CANCELLED

    def test_a_failed_job_says_why(
        self, hero, sandbox, received, django_capture_on_commit_callbacks
    ):
        sandbox.set_fault("job_failure", code="upstream_unavailable")
        job = submitted(hero, sandbox)
        sandbox.finish_job(job.remote_id)
        with django_capture_on_commit_callbacks(execute=True):
            job = services.refresh_job(job)
        assert (job.status, job.error_code) == (JobStatus.FAILED, "upstream_unavailable")
        assert job.error_message
        assert received == [("job_failed", {"job": job, "signal": job_failed})]

    def test_give_up_after_the_job_timeout(self, hero, settings, sandbox):
        job = submitted(hero, sandbox)
        settings.NEURALDRAFT = {**settings.NEURALDRAFT, "JOB_TIMEOUT": 0.001}
        assert services.give_up_if_overdue(job)
        job.refresh_from_db()
        assert (job.status, job.error_code) == (JobStatus.FAILED, "timed_out")


class TestPollSchedule:
    def test_delays_grow_to_the_cap_with_jitter(self, hero, settings, sandbox):
        settings.NEURALDRAFT = {**settings.NEURALDRAFT, "POLL_INITIAL": 2, "POLL_MAX": 30}
        job = submitted(hero, sandbox)
        delays = []
        for polls in (1, 2, 3, 12):
            job.polls = polls
            delays.append(services.schedule_next_poll(job))
        assert 1.6 <= delays[0] <= 2.4
        assert 2.4 <= delays[1] <= 3.6
        assert 3.6 <= delays[2] <= 5.4
        assert 24 <= delays[3] <= 36


class TestIngest:
    def test_stores_the_image_under_its_hash_and_binds_it(
        self, hero, sandbox, received, django_capture_on_commit_callbacks
    ):
        job = completed(hero, sandbox)
        with django_capture_on_commit_callbacks(execute=True):
            version = services.ingest(job)
        content = stored(version)
        digest = hashlib.sha256(content).hexdigest()
        assert version.file.name == f"neuraldraft/hero.background/{digest}.jpg"
        assert (version.width, version.height) == (2048, 1152)
        assert (version.bytes, version.sha256, version.mime_type) == (
            len(content),
            digest,
            "image/jpeg",
        )
        assert version.dominant_color.startswith("#")
        assert (version.prompt, version.aspect_ratio, version.credits_charged) == (
            "A quiet harbour at dawn",
            "16:9",
            40,
        )
        assert version.origin == ImageOrigin.GENERATED
        assert version.source_url == job.result["url"]
        hero.refresh_from_db()
        assert hero.current == version
        assert received == [
            ("image_ready", {"image_key": hero, "version": version, "signal": image_ready})
        ]

    def test_ingesting_twice_keeps_one_version(self, hero, sandbox):
        job = completed(hero, sandbox)
        assert services.ingest(job) == services.ingest(job)
        assert ImageVersion.objects.count() == 1
        assert len([r for r in sandbox.requests if r.path.startswith("/cdn/")]) == 1

    def test_a_new_image_never_replaces_the_old_file(self, hero, sandbox):
        first = services.ingest(completed(hero, sandbox))
        second = services.ingest(completed(hero, sandbox, prompt="The harbour at dusk"))
        assert first.file.name != second.file.name
        assert storages["default"].exists(first.file.name)
        hero.refresh_from_db()
        assert hero.current == second

    @pytest.mark.parametrize(
        ("fault", "params", "error", "code"),
        [
            ("corrupt_image", {}, InvalidImageError, "invalid_image"),
            ("wrong_content_type", {}, InvalidImageError, "invalid_image"),
            (
                "oversized_image",
                {"width": 9000, "height": 9000},
                InvalidImageError,
                "invalid_image",
            ),
            (
                "oversized_image",
                {"bytes": 30 * 1024 * 1024},
                DownloadTooLargeError,
                "image_too_large",
            ),
        ],
    )
    def test_a_bad_image_fails_the_job_and_keeps_the_old_one(
        self, hero, sandbox, settings, fault, params, error, code
    ):
        old = services.ingest(completed(hero, sandbox))
        settings.NEURALDRAFT = {**settings.NEURALDRAFT, "MAX_PIXELS": 10_000_000}
        job = completed(hero, sandbox)
        sandbox.set_fault(fault, path="/cdn", **params)
        with pytest.raises(error):
            services.ingest(job)
        job.refresh_from_db()
        assert (job.status, job.error_code) == (JobStatus.FAILED, code)
        hero.refresh_from_db()
        assert hero.current == old
        assert ImageVersion.objects.count() == 1

    def test_a_result_url_on_a_private_address_is_never_fetched(self, hero, sandbox):
        sandbox.set_fault("result_url", url="http://10.20.30.40/steal.png")
        job = completed(hero, sandbox)
        with pytest.raises(DownloadRefusedError, match=r"10\.20\.30\.40"):
            services.ingest(job)
        job.refresh_from_db()
        assert (job.status, job.error_code) == (JobStatus.FAILED, "download_refused")

    def test_a_partial_file_left_by_a_crash_is_replaced(self, hero, sandbox, settings, tmp_path):
        settings.STORAGES = {
            **settings.STORAGES,
            "default": {
                "BACKEND": "django.core.files.storage.FileSystemStorage",
                "OPTIONS": {"location": str(tmp_path)},
            },
        }
        job = completed(hero, sandbox)
        content = sandbox_image(sandbox, job)
        name = f"neuraldraft/hero.background/{hashlib.sha256(content).hexdigest()}.jpg"
        storages["default"].save(name, ContentFile(content[:100]))
        version = services.ingest(job)
        assert version.file.name == name
        assert (tmp_path / name).read_bytes() == content


def sandbox_image(sandbox, job) -> bytes:
    return requests.get(job.result["url"], timeout=10).content


class TestCancel:
    def test_unsubmitted_job_is_cancelled_locally(self, hero, sandbox):
        job = services.cancel(services.request_generation(hero))
        assert job.status == JobStatus.CANCELLED
        assert sandbox.requests == []

    def test_submitted_job_is_cancelled_remotely(self, hero, sandbox):
        job = services.cancel(submitted(hero, sandbox))
        assert job.status == JobStatus.CANCELLED
        sandbox.assert_called("POST", f"/v1/jobs/{job.remote_id}/cancel", times=1)

    def test_a_job_that_finished_meanwhile_stays_finished(self, hero, sandbox):
        job = submitted(hero, sandbox)
        sandbox.finish_job(job.remote_id)
        assert services.cancel(job).status == JobStatus.COMPLETED


class TestPullAndRollback:
    def test_pull_adopts_the_remote_image_once(self, hero, sandbox):
        job = completed(hero, sandbox)
        pulled = services.pull("hero.background")
        assert pulled.origin == ImageOrigin.PULLED
        assert pulled.job is None
        assert services.pull("hero.background") == pulled
        assert pulled.sha256 == hashlib.sha256(sandbox_image(sandbox, job)).hexdigest()

    def test_pull_of_an_unknown_key(self, sandbox):
        with pytest.raises(NotFoundError):
            services.pull("nothing.here")

    def test_rollback_shows_an_older_version_again(self, hero, sandbox):
        first = services.ingest(completed(hero, sandbox))
        services.ingest(completed(hero, sandbox, prompt="The harbour at dusk"))
        services.rollback(hero, first)
        hero.refresh_from_db()
        assert hero.current == first

    def test_rollback_to_another_keys_version_is_refused(self, hero, sandbox):
        version = services.ingest(completed(hero, sandbox))
        other = ImageKey.objects.create(key="other")
        with pytest.raises(ValidationError):
            services.rollback(other, version)


class TestCreditsLeftToday:
    def test_none_without_a_budget(self, neuraldraft_settings):
        assert services.credits_left_today() is None

    def test_counts_what_is_committed_today(self, neuraldraft_settings, settings):
        settings.NEURALDRAFT = {**neuraldraft_settings, "DAILY_CREDIT_BUDGET": 100}
        services.request_generation("left.one", prompt="a")
        assert services.credits_left_today() == 60
        services.request_generation("left.two", prompt="b")
        assert services.credits_left_today() == 20

    def test_an_accepted_job_moves_to_the_ledger(self, neuraldraft_settings, settings):
        settings.NEURALDRAFT = {**neuraldraft_settings, "DAILY_CREDIT_BUDGET": 100}
        job = services.submit(services.request_generation("left.one", prompt="a"))
        assert CreditSpend.objects.get().job == job
        assert services.credits_left_today() == 60

    def test_a_job_refused_before_it_was_accepted_costs_nothing(
        self, neuraldraft_settings, settings, sandbox
    ):
        settings.NEURALDRAFT = {**neuraldraft_settings, "DAILY_CREDIT_BUDGET": 100}
        sandbox.set_fault("status", status=402, code="insufficient_credits", method="POST")
        job = services.submit(services.request_generation("left.one", prompt="a"))
        assert job.status == JobStatus.FAILED
        assert not CreditSpend.objects.exists()
        assert services.credits_left_today() == 100


class TestPollOnceOwnsTheOutcome:
    @pytest.mark.parametrize(
        ("fault", "params", "code"),
        [
            ("status", {"status": 404}, "remote_not_found"),
            ("status", {"status": 401}, "unauthorized"),
            ("status", {"status": 403}, "forbidden"),
            ("answer_body", {"body": "<html>a proxy page</html>"}, "malformed_response"),
            ("answer_fields", {"fields": {"status": 42}}, "malformed_response"),
            ("answer_fields", {"fields": {"id": "job_somebodyelse"}}, "malformed_response"),
            (
                "answer_fields",
                {"fields": {"created_at": "9999-12-31T23:59:59-14:00"}},
                "malformed_response",
            ),
            (
                "answer_fields",
                {"fields": {"updated_at": "0001-01-01T00:00:00+14:00"}},
                "malformed_response",
            ),
        ],
    )
    def test_a_permanent_error_fails_the_job_and_frees_the_key(
        self, hero, sandbox, received, fault, params, code
    ):
        job = submitted(hero, sandbox)
        sandbox.set_fault(fault, path="/v1/jobs/", **params)
        outcome = services.poll_once(job)
        assert (outcome.job.status, outcome.job.error_code) == (JobStatus.FAILED, code)
        assert outcome.next_poll_in is None
        assert outcome.job.error_message
        assert services.request_generation(hero) != job

    def test_a_transient_error_is_shown_in_last_error_then_cleared(self, hero, sandbox, api_key):
        job = submitted(hero, sandbox)
        sandbox.set_fault("status", status=503, path="/v1/jobs/", count=6)
        first = services.poll_once(job)
        second = services.poll_once(job)
        job.refresh_from_db()
        assert (job.status, job.failed_attempts) == (JobStatus.PENDING, 2)
        assert first.next_poll_in is not None and second.next_poll_in is not None
        assert "503" in job.last_error
        assert api_key not in job.last_error
        assert job.last_error_at is not None

        services.poll_once(job)
        job.refresh_from_db()
        assert (job.last_error, job.failed_attempts, job.last_error_at) == ("", 0, None)

    def test_the_timeout_is_checked_before_any_remote_call(self, hero, sandbox, settings):
        job = submitted(hero, sandbox)
        sent = len(sandbox.requests)
        settings.NEURALDRAFT = {**settings.NEURALDRAFT, "JOB_TIMEOUT": 60}
        Job.objects.filter(pk=job.pk).update(created_at=job.created_at - timedelta(seconds=61))
        outcome = services.poll_once(job)
        assert (outcome.job.status, outcome.job.error_code) == (JobStatus.FAILED, "timed_out")
        assert len(sandbox.requests) == sent

    def test_a_completed_job_past_its_deadline_is_not_downloaded(self, hero, sandbox, settings):
        job = completed(hero, sandbox)
        settings.NEURALDRAFT = {**settings.NEURALDRAFT, "JOB_TIMEOUT": 60}
        Job.objects.filter(pk=job.pk).update(created_at=job.created_at - timedelta(seconds=61))
        sent = len(sandbox.requests)
        outcome = services.poll_once(job)
        assert (outcome.job.status, outcome.job.error_code) == (JobStatus.FAILED, "timed_out")
        assert len(sandbox.requests) == sent
        assert not ImageVersion.objects.filter(job=job).exists()

    def test_a_cdn_retry_after_never_keeps_an_ingest_past_the_deadline(
        self, hero, sandbox, settings
    ):
        job = completed(hero, sandbox)
        settings.NEURALDRAFT = {**settings.NEURALDRAFT, "JOB_TIMEOUT": 60}
        sandbox.set_fault("rate_limit", retry_after=86_400, path="/cdn/")
        outcome = services.poll_once(job)
        assert outcome.job.status == JobStatus.COMPLETED
        assert outcome.next_poll_in <= 60 + 1

        Job.objects.filter(pk=job.pk).update(created_at=job.created_at - timedelta(seconds=61))
        sent = len(sandbox.requests)
        outcome = services.poll_once(job)
        assert (outcome.job.status, outcome.job.error_code) == (JobStatus.FAILED, "timed_out")
        assert (outcome.next_poll_in, len(sandbox.requests)) == (None, sent)
        assert not ImageVersion.objects.filter(job=job).exists()

    def test_the_download_of_a_completed_job_ends_at_its_deadline(self, hero, sandbox, settings):
        # The trickle takes 14 s whole; the job has about one second left.
        job = completed(hero, sandbox)
        settings.NEURALDRAFT = {**settings.NEURALDRAFT, "JOB_TIMEOUT": 60}
        Job.objects.filter(pk=job.pk).update(created_at=job.created_at - timedelta(seconds=59))
        fault = sandbox.set_fault("slow_body", path="/cdn/", count=1)
        outcome = services.poll_once(job)
        job = outcome.job
        assert (job.status, job.error_code) == (JobStatus.FAILED, "download_failed")
        assert "took longer than" in outcome.job.error_message
        assert 0 < fault.served < 72
        assert not ImageVersion.objects.filter(job=job).exists()

    def test_an_unsent_job_whose_submit_keeps_failing_times_out(self, hero, sandbox, settings):
        settings.NEURALDRAFT = {**settings.NEURALDRAFT, "JOB_TIMEOUT": 60}
        sandbox.set_fault("status", status=503, path="/v1/images")
        job = services.request_generation(hero)
        assert services.poll_once(job).next_poll_in is not None
        Job.objects.filter(pk=job.pk).update(created_at=job.created_at - timedelta(seconds=61))
        outcome = services.poll_once(job)
        assert (outcome.job.status, outcome.job.error_code) == (JobStatus.FAILED, "timed_out")
        assert outcome.job.remote_id is None

    def test_the_next_step_is_never_later_than_the_deadline(self, hero, sandbox, settings):
        settings.NEURALDRAFT = {**settings.NEURALDRAFT, "JOB_TIMEOUT": 60}
        job = submitted(hero, sandbox)
        Job.objects.filter(pk=job.pk).update(created_at=job.created_at - timedelta(seconds=55))
        sandbox.set_fault("rate_limit", retry_after=600, path="/v1/jobs/")
        assert services.poll_once(job).next_poll_in <= 6

    def test_a_submit_answered_with_a_bad_id_fails_the_job(self, hero, sandbox):
        sandbox.set_fault("answer_fields", path="/v1/images", fields={"id": "job_" + "x" * 100})
        outcome = services.poll_once(services.request_generation(hero))
        assert (outcome.job.status, outcome.job.error_code) == (
            JobStatus.FAILED,
            "malformed_response",
        )
        assert (outcome.job.remote_id, outcome.next_poll_in) == (None, None)


#: Clears the screen, turns the text red and forges a log line; a bidi override ends it.
HOSTILE = "\x1b[2J\x1b[31mrefused\nWARNING django.security forged line\u202e"
ESCAPED = "\\x1b[2J\\x1b[31mrefused\\nWARNING django.security forged line\\u202e"
UNPRINTABLE = "\x1b\n\r\u202e"


class TestMirrorNormalises:
    def poll_with(self, hero, sandbox, **fields):
        job = submitted(hero, sandbox)
        sandbox.set_fault("answer_fields", path="/v1/jobs/", count=1, fields=fields)
        return services.poll_once(job).job

    @pytest.mark.parametrize("status", ["queued", "expired", "x" * 500])
    def test_an_unknown_status_counts_as_processing_and_is_kept_raw(self, hero, sandbox, status):
        job = self.poll_with(hero, sandbox, status=status)
        assert job.status == JobStatus.PROCESSING
        assert job.raw["status"] == status

    @pytest.mark.parametrize(("progress", "stored"), [(70000, 100), (-1, 0), (42, 42)])
    def test_progress_is_clamped(self, hero, sandbox, progress, stored):
        assert self.poll_with(hero, sandbox, progress=progress).progress == stored

    def test_texts_are_cut_to_their_column_and_unknown_types_ignored(self, hero, sandbox):
        job = self.poll_with(
            hero,
            sandbox,
            type="x" * 100,
            message="m" * 10_000,
            steps=[{"name": "s" * 1000, "completed": False, "active": True}] * 500,
        )
        assert job.type == "image.generate"
        assert len(job.message) == limits.JOB_MESSAGE_MAX_LENGTH
        assert len(job.steps) == limits.MAX_STEPS
        assert len(job.steps[0]["name"]) == limits.STEP_NAME_MAX_LENGTH

    def test_nul_characters_are_stored_on_every_database(self, hero, sandbox):
        job = self.poll_with(hero, sandbox, message="a\x00b", extra={"k\x00": ["\x00"]})
        assert job.message == "a\\x00b"
        nul = "\\u0000" if connection.vendor == "postgresql" else "\x00"
        assert job.raw["extra"] == {f"k{nul}": [nul]}

    def test_texts_are_stored_on_one_printable_line_that_fits_their_column(self, hero, sandbox):
        job = self.poll_with(
            hero,
            sandbox,
            message=HOSTILE,
            steps=[{"name": "\x1b" * 1000, "completed": False, "active": True}],
        )
        assert job.message == ESCAPED
        name = job.steps[0]["name"]
        assert (name[:8], name[-1], len(name)) == ("\\x1b\\x1b", "…", limits.STEP_NAME_MAX_LENGTH)

    def test_a_failure_is_stored_and_logged_on_one_printable_line(self, hero, sandbox, caplog):
        """The error of a 200 answer reaches the row, and announce_failure's WARNING, escaped."""
        sandbox.set_fault("job_failure", count=1, code="bad\x1b[31m\ncode", message=HOSTILE)
        job = submitted(hero, sandbox)
        sandbox.finish_job(job.remote_id)
        caplog.set_level(logging.DEBUG)
        job = services.poll_once(job).job
        assert (job.status, job.error_code) == (JobStatus.FAILED, "bad\\x1b[31m\\ncode")
        assert job.error_message == ESCAPED
        logged = [record.getMessage() for record in caplog.records]
        assert any(ESCAPED in text for text in logged)
        for text in logged:
            assert not any(char in text for char in UNPRINTABLE), repr(text[:300])

    def test_an_error_is_masked_and_cut(self, hero, sandbox, api_key, received):
        job = self.poll_with(
            hero,
            sandbox,
            status="failed",
            error={"code": "c" * 500, "message": f"Bad key {api_key} " + "m" * 10_000},
        )
        assert job.status == JobStatus.FAILED
        assert len(job.error_code) == limits.ERROR_CODE_MAX_LENGTH
        assert len(job.error_message) == limits.ERROR_MESSAGE_MAX_LENGTH
        assert api_key not in job.error_message
        assert "ndsk_test_…" in job.error_message

    def test_a_result_url_too_long_for_its_column_fails_before_any_download(self, hero, sandbox):
        job = submitted(hero, sandbox)
        sandbox.finish_job(job.remote_id)
        url = f"{sandbox.origin}/cdn/{'a' * 2100}.png"
        sandbox.set_fault("answer_fields", path="/v1/jobs/", fields={"result": {"url": url}})
        outcome = services.poll_once(job)
        assert (outcome.job.status, outcome.job.error_code) == (JobStatus.FAILED, "invalid_result")
        assert not [r for r in sandbox.requests if r.path.startswith("/cdn/")]
        assert not ImageVersion.objects.exists()

    def test_a_long_signed_url_is_kept_without_its_query(self, hero, sandbox):
        job = completed(hero, sandbox)
        long_url = job.result["url"] + "?token=" + "t" * 2100
        Job.objects.filter(pk=job.pk).update(result={**job.result, "url": long_url})
        job.refresh_from_db()
        version = services.ingest(job)
        assert version.source_url == job.result["url"].split("?")[0]


class RenamingStorage(InMemoryStorage):
    """A storage that saves under another name than asked: a failure after the file is written."""

    def get_available_name(self, name, max_length=None):
        stem, dot, extension = name.rpartition(".")
        return f"{stem}_renamed{dot}{extension}"


class BrokenStorage(InMemoryStorage):
    def _save(self, name, content):
        raise RuntimeError("The disk is on fire.")


class TestIngestFailures:
    @pytest.fixture
    def use_storage(self, settings):
        def use(backend: type) -> None:
            settings.STORAGES = {
                **settings.STORAGES,
                "default": {"BACKEND": f"{__name__}.{backend.__name__}"},
            }

        return use

    def test_a_failure_after_the_file_is_written_leaves_no_orphan(
        self, hero, sandbox, use_storage
    ):
        use_storage(RenamingStorage)
        job = completed(hero, sandbox)
        outcome = services.poll_once(job)
        assert (outcome.job.status, outcome.job.error_code) == (
            JobStatus.FAILED,
            "download_failed",
        )
        assert storages["default"].listdir("neuraldraft/hero.background") == ([], [])
        assert not ImageVersion.objects.exists()

    def test_an_unexpected_error_fails_the_job_instead_of_downloading_again(
        self, hero, sandbox, use_storage
    ):
        use_storage(BrokenStorage)
        job = completed(hero, sandbox)
        outcome = services.poll_once(job)
        assert (outcome.job.status, outcome.job.error_code) == (JobStatus.FAILED, "ingest_failed")
        assert "disk is on fire" in outcome.job.error_message
        assert outcome.next_poll_in is None
        assert services.poll_once(job).next_poll_in is None
        assert len([r for r in sandbox.requests if r.path.startswith("/cdn/")]) == 1


class TestInputIsValidatedBeforeAnythingIsWritten:
    @pytest.mark.parametrize(
        ("options", "code"),
        [
            ({"prompt": "x" * (limits.PROMPT_MAX_LENGTH + 1)}, "prompt_too_long"),
            ({"prompt": "a cat\x00"}, "null_characters"),
            ({"prompt": "   "}, "empty_prompt"),
            ({"prompt": "a cat", "style": "s" * (limits.STYLE_MAX_LENGTH + 1)}, "style_too_long"),
            ({"prompt": "a cat", "style": "oil\x00"}, "null_characters"),
            ({"prompt": "a cat", "aspect_ratio": "2:1"}, "aspect_ratio"),
        ],
    )
    @pytest.mark.parametrize("call", [services.request_generation, services.generate])
    def test_a_refused_call_on_a_new_key_writes_nothing(self, sandbox, call, options, code):
        with pytest.raises(ValidationError) as excinfo:
            call("brand.new", **options)
        assert excinfo.value.code == code
        assert not ImageKey.objects.exists()
        assert not Job.objects.exists()
        assert sandbox.requests == []

    @pytest.mark.parametrize(
        "options",
        [
            {"prompt": ""},
            {"prompt": "  "},
            {"prompt": "x" * (limits.PROMPT_MAX_LENGTH + 1)},
            {"style": "s" * (limits.STYLE_MAX_LENGTH + 1)},
            {"alt_text": "a" * (limits.ALT_TEXT_MAX_LENGTH + 1)},
        ],
    )
    def test_generate_leaves_an_existing_key_as_it_was(self, hero, sandbox, options):
        before = ImageKey.objects.filter(pk=hero.pk).values().get()
        with pytest.raises(ValidationError):
            services.generate("hero.background", **options)
        assert ImageKey.objects.filter(pk=hero.pk).values().get() == before
        assert not Job.objects.exists()

    def test_generate_refused_by_the_budget_leaves_the_key_as_it_was(self, hero, settings):
        settings.NEURALDRAFT = {**settings.NEURALDRAFT, "DAILY_CREDIT_BUDGET": 10}
        with pytest.raises(CreditBudgetExceededError):
            services.generate("hero.background", prompt="Something else")
        hero.refresh_from_db()
        assert hero.prompt == "A quiet harbour at dawn"

    def test_the_model_and_its_form_hold_the_same_limits(self):
        form_class = modelform_factory(ImageKey, fields=["key", "prompt", "style", "alt_text"])
        too_long = {
            "key": "hero",
            "prompt": "x" * (limits.PROMPT_MAX_LENGTH + 1),
            "style": "s" * (limits.STYLE_MAX_LENGTH + 1),
            "alt_text": "a" * (limits.ALT_TEXT_MAX_LENGTH + 1),
        }
        form = form_class(data=too_long)
        assert set(form.errors) == {"prompt", "style", "alt_text"}
        with pytest.raises(ValidationError) as excinfo:
            ImageKey(**too_long).full_clean()
        assert set(excinfo.value.message_dict) == {"prompt", "style", "alt_text"}
        ok = {**too_long, "prompt": "x" * limits.PROMPT_MAX_LENGTH, "style": "", "alt_text": ""}
        assert form_class(data=ok).is_valid()


class TestCancelSafely:
    def test_a_job_cancelled_before_it_was_sent_is_never_sent(self, hero, sandbox):
        job = services.cancel(services.request_generation(hero))
        assert job.status == JobStatus.CANCELLED
        assert services.submit(job).remote_id is None
        assert services.poll_once(job).next_poll_in is None
        assert sandbox.requests == []

    @pytest.fixture
    def slow_sandbox(self, settings):
        """A sandbox whose jobs run long enough to be cancelled after a few retried calls."""
        with run_sandbox(job_seconds=60) as server:
            settings.NEURALDRAFT = {**settings.NEURALDRAFT, "BASE_URL": server.base_url}
            yield server

    def test_a_cancel_while_a_send_has_no_answer_yet_waits_for_the_id(
        self, hero, slow_sandbox, settings
    ):
        sandbox = slow_sandbox
        settings.NEURALDRAFT = {**settings.NEURALDRAFT, "MAX_RETRIES": 0}
        sandbox.set_fault("drop_response", count=1, method="POST", path="/v1/images")
        job = services.request_generation(hero)
        services.poll_once(job)
        assert len(sandbox.jobs) == 1
        job = services.cancel(job)
        assert (job.status, job.remote_id) == (JobStatus.PENDING, None)
        assert job.cancel_requested_at is not None

        outcome = services.poll_once(job)
        (remote_id,) = sandbox.jobs
        assert (outcome.job.status, outcome.job.remote_id) == (JobStatus.CANCELLED, remote_id)
        assert sandbox.jobs[remote_id]["status"] == "cancelled"

    def test_a_remote_cancel_that_fails_for_now_is_delivered_by_the_next_step(
        self, hero, slow_sandbox
    ):
        sandbox = slow_sandbox
        job = submitted(hero, sandbox)
        sandbox.set_fault("status", status=503, path=f"/v1/jobs/{job.remote_id}/cancel")
        with pytest.raises(ServerError):
            services.cancel(job)
        job.refresh_from_db()
        assert job.cancel_requested_at is not None
        sandbox.clear_faults()
        assert services.poll_once(job).job.status == JobStatus.CANCELLED
        assert sandbox.jobs[job.remote_id]["status"] == "cancelled"

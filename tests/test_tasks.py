"""The Celery tasks, run in this process against the sandbox: follow, retry, give up, recover."""

from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from django_neuraldraft import services, tasks
from django_neuraldraft.choices import JobStatus
from django_neuraldraft.models import ImageKey, Job
from django_neuraldraft.services import chains
from django_neuraldraft.services.backoff import RETRY_BASE
from tests.helpers import run_published

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("neuraldraft_settings")]


@pytest.fixture
def hero():
    return ImageKey.objects.create(key="hero.background", prompt="A quiet harbour at dawn")


def names(published):
    return [message.name for message in published]


class TestPipeline:
    def test_from_request_to_bound_image(
        self, hero, sandbox, published, django_capture_on_commit_callbacks
    ):
        with django_capture_on_commit_callbacks(execute=True):
            job = services.request_generation(hero)
        ran = run_published(published)
        assert ran[0] == "neuraldraft.submit_generation"
        assert set(ran[1:]) == {"neuraldraft.poll_job"}
        job.refresh_from_db()
        hero.refresh_from_db()
        assert job.status == JobStatus.COMPLETED
        assert hero.current.job == job
        assert job.polls == ran.count("neuraldraft.poll_job")

    def test_a_failed_job_stops_the_chain(self, hero, sandbox, published):
        sandbox.set_fault("job_failure", code="upstream_unavailable")
        job = services.request_generation(hero)
        tasks.submit_generation(job.pk)
        run_published(published)
        job.refresh_from_db()
        hero.refresh_from_db()
        assert (job.status, job.error_code, hero.current) == (
            JobStatus.FAILED,
            "upstream_unavailable",
            None,
        )


def token_of(job) -> str:
    job.refresh_from_db()
    return job.chain_token


class TestSubmitGeneration:
    def test_schedules_the_first_poll_at_the_initial_delay(
        self, hero, sandbox, published, settings
    ):
        settings.NEURALDRAFT = {**settings.NEURALDRAFT, "POLL_INITIAL": 2}
        job = services.request_generation(hero)
        tasks.submit_generation(job.pk, token=token_of(job))
        (poll,) = published
        assert (poll.name, poll.args, poll.kwargs) == (
            "neuraldraft.poll_job",
            (job.pk,),
            {"token": token_of(job)},
        )
        eta = datetime.fromisoformat(poll.eta)
        assert timedelta(seconds=1.5) < eta - timezone.now() <= timedelta(seconds=2)

    def test_a_transient_failure_schedules_one_retry_and_says_why(self, hero, sandbox, published):
        sandbox.set_fault("status", status=503, path="/v1/images")
        job = services.request_generation(hero)
        tasks.submit_generation(job.pk, token=token_of(job))
        job.refresh_from_db()
        assert (job.status, job.remote_id, job.failed_attempts) == (JobStatus.PENDING, None, 1)
        assert "503" in job.last_error
        assert job.last_error_at is not None
        (retry,) = published
        assert (retry.name, retry.kwargs) == (
            "neuraldraft.submit_generation",
            {"token": job.chain_token},
        )
        wait = datetime.fromisoformat(retry.eta) - timezone.now()
        assert wait <= timedelta(seconds=RETRY_BASE)

    def test_a_submit_that_keeps_failing_ends_at_the_job_timeout(
        self, hero, sandbox, published, settings
    ):
        settings.NEURALDRAFT = {**settings.NEURALDRAFT, "JOB_TIMEOUT": 60}
        sandbox.set_fault("status", status=503, path="/v1/images")
        job = services.request_generation(hero)
        tasks.submit_generation(job.pk, token=token_of(job))
        Job.objects.filter(pk=job.pk).update(created_at=timezone.now() - timedelta(seconds=61))
        posts = len(sandbox.requests)
        (retry,) = published
        published.clear()

        tasks.submit_generation(job.pk, **retry.kwargs)

        job.refresh_from_db()
        assert (job.status, job.error_code) == (JobStatus.FAILED, "timed_out")
        assert (len(sandbox.requests), published, job.chain_token) == (posts, [], "")

    def test_a_refusal_fails_the_job_and_ends_the_chain(self, hero, sandbox, published):
        sandbox.set_fault("status", status=422, code="validation_failed", path="/v1/images")
        job = services.request_generation(hero)
        tasks.submit_generation(job.pk, token=token_of(job))
        job.refresh_from_db()
        assert (job.status, job.error_code, job.chain_token) == (
            JobStatus.FAILED,
            "validation_failed",
            "",
        )
        assert published == []

    def test_a_deleted_job_is_ignored(self, sandbox, published):
        tasks.submit_generation(123456, token="0" * 32)
        tasks.submit_generation(123456)
        assert sandbox.requests == []


class TestOneChainPerJob:
    def submitted(self, hero, published):
        job = services.request_generation(hero)
        tasks.submit_generation(job.pk, token=token_of(job))
        published.clear()
        job.refresh_from_db()
        return job

    def test_a_redelivered_message_is_dropped(self, hero, sandbox, published):
        job = services.request_generation(hero)
        token = token_of(job)
        tasks.submit_generation(job.pk, token=token)
        published.clear()
        tasks.submit_generation(job.pk, token=token)
        sandbox.assert_called("POST", "/v1/images", times=1)
        assert published == []

    def test_no_message_can_claim_a_job_while_a_step_runs(self, hero, sandbox, published):
        job = self.submitted(hero, published)
        running = chains.claim(job.pk, job.chain_token).chain_token
        tasks.poll_job(job.pk, token=running)
        assert not [r for r in sandbox.requests if r.path.startswith("/v1/jobs/")]
        assert token_of(job) == running

    def test_a_message_of_a_retired_chain_is_dropped(self, hero, sandbox, published):
        job = self.submitted(hero, published)
        old = job.chain_token
        Job.objects.filter(pk=job.pk).update(chain_due_at=timezone.now() - timedelta(minutes=5))
        assert tasks.sweep_stale_jobs(grace_seconds=60)["poll"] == 1
        (restart,) = published
        assert restart.kwargs["token"] != old
        published.clear()

        tasks.poll_job(job.pk, token=old)
        assert not [r for r in sandbox.requests if r.path.startswith("/v1/jobs/")]
        assert published == []

    def test_a_message_sent_by_hand_takes_the_chain_over(self, hero, sandbox, published):
        job = self.submitted(hero, published)
        old = job.chain_token
        tasks.poll_job(job.pk)
        (following,) = published
        published.clear()
        tasks.poll_job(job.pk, token=old)
        assert len([r for r in sandbox.requests if r.path.startswith("/v1/jobs/")]) == 1
        assert published == []
        assert following.kwargs == {"token": token_of(job)}

    def test_the_sweep_leaves_a_chain_that_is_waiting_alone(self, hero, sandbox, published):
        sandbox.set_fault("status", status=503, path="/v1/images")
        job = services.request_generation(hero)
        tasks.submit_generation(job.pk, token=token_of(job))
        published.clear()
        for _sweep in range(5):
            assert tasks.sweep_stale_jobs(grace_seconds=0) == {
                "submit": 0,
                "poll": 0,
                "ingest": 0,
                "renditions": 0,
            }
        assert published == []


class TestPollJob:
    def submitted(self, hero, published):
        job = services.request_generation(hero)
        tasks.submit_generation(job.pk, token=token_of(job))
        published.clear()
        job.refresh_from_db()
        return job

    def test_honours_a_long_retry_after_without_sleeping(self, hero, sandbox, published):
        job = self.submitted(hero, published)
        sandbox.set_fault("rate_limit", retry_after=30, path="/v1/jobs/")
        tasks.poll_job(job.pk, token=job.chain_token)
        (poll,) = published
        wait = datetime.fromisoformat(poll.eta) - timezone.now()
        assert timedelta(seconds=28) < wait <= timedelta(seconds=30)

    def test_gives_up_after_the_job_timeout_and_says_so(self, hero, sandbox, published, settings):
        job = self.submitted(hero, published)
        settings.NEURALDRAFT = {**settings.NEURALDRAFT, "JOB_TIMEOUT": 0.001}
        tasks.poll_job(job.pk, token=job.chain_token)
        job.refresh_from_db()
        assert (job.status, job.error_code) == (JobStatus.FAILED, "timed_out")
        assert "Gave up after" in job.error_message
        assert published == []

    def test_the_poll_that_sees_completion_binds_the_image(self, hero, sandbox, published):
        job = self.submitted(hero, published)
        sandbox.finish_job(job.remote_id)
        tasks.poll_job(job.pk, token=job.chain_token)
        hero.refresh_from_db()
        assert hero.current.job == job
        assert (published, token_of(job)) == ([], "")

    def test_an_unreachable_image_is_ingested_later(self, hero, sandbox, published):
        job = self.submitted(hero, published)
        sandbox.finish_job(job.remote_id)
        sandbox.set_fault("status", status=503, path="/cdn")
        tasks.poll_job(job.pk, token=job.chain_token)
        assert [(m.name, m.args) for m in published] == [("neuraldraft.ingest_job", (job.pk,))]
        hero.refresh_from_db()
        assert hero.current is None

        sandbox.clear_faults()
        (ingest,) = published
        published.clear()
        tasks.ingest_job(job.pk, **ingest.kwargs)
        hero.refresh_from_db()
        assert (hero.current.job, published) == (job, [])

    def test_a_cdn_retry_after_sends_the_next_ingest_by_the_deadline(
        self, hero, sandbox, published, settings
    ):
        settings.NEURALDRAFT = {**settings.NEURALDRAFT, "JOB_TIMEOUT": 60}
        job = self.submitted(hero, published)
        sandbox.finish_job(job.remote_id)
        services.refresh_job(job)
        sandbox.set_fault("rate_limit", retry_after=86_400, path="/cdn/")
        tasks.ingest_job(job.pk, token=job.chain_token)
        (ingest,) = published
        assert ingest.name == "neuraldraft.ingest_job"
        wait = datetime.fromisoformat(ingest.eta) - timezone.now()
        assert wait <= timedelta(seconds=60 + 1)

    def test_a_completed_job_without_its_image_is_ingested_by_the_next_poll(
        self, hero, sandbox, published
    ):
        job = self.submitted(hero, published)
        sandbox.finish_job(job.remote_id)
        services.refresh_job(job)
        tasks.poll_job(job.pk, token=job.chain_token)
        hero.refresh_from_db()
        assert (hero.current.job, published) == (job, [])


class TestSweepStaleJobs:
    def test_restarts_what_a_lost_task_left_behind(self, sandbox, published):
        long_ago = timezone.now() - timedelta(minutes=5)
        unsent = services.request_generation("unsent", prompt="a")
        waiting = services.request_generation("waiting", prompt="b")
        tasks.submit_generation(waiting.pk, token=token_of(waiting))
        finished = services.request_generation("finished", prompt="c")
        tasks.submit_generation(finished.pk, token=token_of(finished))
        finished.refresh_from_db()
        sandbox.finish_job(finished.remote_id)
        services.refresh_job(finished)
        Job.objects.update(chain_due_at=long_ago)
        published.clear()

        assert tasks.sweep_stale_jobs(grace_seconds=60) == {
            "submit": 1,
            "poll": 1,
            "ingest": 1,
            "renditions": 0,
        }
        assert sorted((m.name, m.args, m.kwargs) for m in published) == sorted(
            [
                ("neuraldraft.ingest_job", (finished.pk,), {"token": token_of(finished)}),
                ("neuraldraft.poll_job", (waiting.pk,), {"token": token_of(waiting)}),
                ("neuraldraft.submit_generation", (unsent.pk,), {"token": token_of(unsent)}),
            ]
        )

    def test_leaves_recent_work_and_ended_jobs_alone(self, sandbox, published):
        services.request_generation("fresh", prompt="a")
        done = services.request_generation("done", prompt="b")
        services.cancel(done)
        Job.objects.filter(pk=done.pk).update(chain_due_at=None)
        assert tasks.sweep_stale_jobs(grace_seconds=60) == {
            "submit": 0,
            "poll": 0,
            "ingest": 0,
            "renditions": 0,
        }
        assert published == []

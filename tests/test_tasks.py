"""The Celery tasks, run in this process against the sandbox: follow, retry, give up, recover."""

from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from django_neuraldraft import services, tasks
from django_neuraldraft.choices import JobStatus
from django_neuraldraft.exceptions import ServerError
from django_neuraldraft.models import ImageKey, Job
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


class TestSubmitGeneration:
    def test_schedules_the_first_poll_at_the_initial_delay(
        self, hero, sandbox, published, settings
    ):
        settings.NEURALDRAFT = {**settings.NEURALDRAFT, "POLL_INITIAL": 2}
        job = services.request_generation(hero)
        tasks.submit_generation(job.pk)
        (poll,) = published
        assert (poll.name, poll.args) == ("neuraldraft.poll_job", (job.pk,))
        eta = datetime.fromisoformat(poll.eta)
        assert timedelta(seconds=1.5) < eta - timezone.now() <= timedelta(seconds=2)

    def test_a_transient_failure_is_raised_for_celery_to_retry(self, hero, sandbox, published):
        sandbox.set_fault("status", status=503, path="/v1/images")
        job = services.request_generation(hero)
        with pytest.raises(ServerError):
            tasks.submit_generation(job.pk)
        job.refresh_from_db()
        assert (job.status, job.remote_id, published) == (JobStatus.PENDING, None, [])

    def test_a_deleted_job_is_ignored(self, sandbox, published):
        tasks.submit_generation(123456)
        assert sandbox.requests == []


class TestPollJob:
    def submitted(self, hero, published):
        job = services.request_generation(hero)
        tasks.submit_generation(job.pk)
        published.clear()
        job.refresh_from_db()
        return job

    def test_a_message_that_arrives_early_is_a_duplicate_and_dropped(
        self, hero, sandbox, published
    ):
        job = self.submitted(hero, published)
        Job.objects.filter(pk=job.pk).update(next_poll_at=timezone.now() + timedelta(minutes=1))
        tasks.poll_job(job.pk)
        assert published == []
        assert not [r for r in sandbox.requests if r.path.startswith("/v1/jobs/")]

    def test_honours_a_long_retry_after_without_sleeping(self, hero, sandbox, published):
        job = self.submitted(hero, published)
        sandbox.set_fault("rate_limit", retry_after=30, path="/v1/jobs/")
        tasks.poll_job(job.pk)
        (poll,) = published
        wait = datetime.fromisoformat(poll.eta) - timezone.now()
        assert timedelta(seconds=28) < wait <= timedelta(seconds=30)

    def test_gives_up_after_the_job_timeout_and_says_so(self, hero, sandbox, published, settings):
        job = self.submitted(hero, published)
        settings.NEURALDRAFT = {**settings.NEURALDRAFT, "JOB_TIMEOUT": 0.001}
        tasks.poll_job(job.pk)
        job.refresh_from_db()
        assert (job.status, job.error_code) == (JobStatus.FAILED, "timed_out")
        assert "Gave up after" in job.error_message
        assert published == []

    def test_the_poll_that_sees_completion_binds_the_image(self, hero, sandbox, published):
        job = self.submitted(hero, published)
        sandbox.finish_job(job.remote_id)
        tasks.poll_job(job.pk)
        hero.refresh_from_db()
        assert hero.current.job == job
        assert published == []

    def test_an_unreachable_image_is_ingested_later(self, hero, sandbox, published):
        job = self.submitted(hero, published)
        sandbox.finish_job(job.remote_id)
        sandbox.set_fault("status", status=503, path="/cdn")
        tasks.poll_job(job.pk)
        assert [(m.name, m.args) for m in published] == [("neuraldraft.poll_job", (job.pk,))]
        hero.refresh_from_db()
        assert hero.current is None

        sandbox.clear_faults()
        published.clear()
        tasks.poll_job(job.pk)
        hero.refresh_from_db()
        assert (hero.current.job, published) == (job, [])

    def test_a_completed_job_without_its_image_is_ingested_by_the_next_poll(
        self, hero, sandbox, published
    ):
        job = self.submitted(hero, published)
        sandbox.finish_job(job.remote_id)
        services.refresh_job(job)
        tasks.poll_job(job.pk)
        hero.refresh_from_db()
        assert (hero.current.job, published) == (job, [])


class TestSweepStaleJobs:
    def test_requeues_what_a_lost_task_left_behind(self, sandbox, published):
        long_ago = timezone.now() - timedelta(minutes=5)
        unsent = services.request_generation("unsent", prompt="a")
        waiting = services.request_generation("waiting", prompt="b")
        tasks.submit_generation(waiting.pk)
        finished = services.request_generation("finished", prompt="c")
        tasks.submit_generation(finished.pk)
        finished.refresh_from_db()
        sandbox.finish_job(finished.remote_id)
        services.refresh_job(finished)
        Job.objects.update(created_at=long_ago, next_poll_at=long_ago)
        Job.objects.filter(pk=finished.pk).update(finished_at=long_ago)
        published.clear()

        assert tasks.sweep_stale_jobs(grace_seconds=60) == {"submit": 1, "poll": 1, "ingest": 1}
        assert sorted((m.name, m.args) for m in published) == [
            ("neuraldraft.ingest_job", (finished.pk,)),
            ("neuraldraft.poll_job", (waiting.pk,)),
            ("neuraldraft.submit_generation", (unsent.pk,)),
        ]

    def test_leaves_recent_work_alone(self, sandbox, published):
        services.request_generation("fresh", prompt="a")
        assert tasks.sweep_stale_jobs(grace_seconds=60) == {"submit": 0, "poll": 0, "ingest": 0}
        assert published == []

"""Model rules that the database itself enforces: forward-only jobs, one job in flight per key."""

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError
from django.utils import timezone

from django_neuraldraft.choices import JobStatus
from django_neuraldraft.managers import statuses_before
from django_neuraldraft.models import ImageKey, Job

pytestmark = pytest.mark.django_db


def make_job(image_key=None, status=JobStatus.PENDING, **fields):
    return Job.objects.create(
        image_key=image_key, status=status, idempotency_key=f"idem-{Job.objects.count()}", **fields
    )


class TestImageKey:
    def test_full_clean_refuses_a_bad_key(self):
        with pytest.raises(ValidationError) as excinfo:
            ImageKey(key="Hero/Background").full_clean()
        assert "key" in excinfo.value.message_dict

    def test_str_is_the_key(self):
        assert str(ImageKey(key="hero.background")) == "hero.background"


class TestJobStatusOrder:
    @pytest.mark.parametrize(
        ("target", "allowed"),
        [
            ("pending", ["pending"]),
            ("processing", ["pending", "processing"]),
            ("completed", ["pending", "processing"]),
            ("failed", ["pending", "processing"]),
            ("cancelled", ["pending", "processing"]),
        ],
    )
    def test_statuses_before(self, target, allowed):
        assert statuses_before(target) == allowed

    def test_advance_moves_forward(self):
        job = make_job()
        assert Job.objects.advance(job.pk, JobStatus.PROCESSING, progress=40)
        job.refresh_from_db()
        assert (job.status, job.progress) == ("processing", 40)

    def test_advance_never_moves_back_or_between_terminal_states(self):
        job = make_job(status=JobStatus.COMPLETED)
        assert not Job.objects.advance(job.pk, JobStatus.PROCESSING)
        assert not Job.objects.advance(job.pk, JobStatus.FAILED)
        job.refresh_from_db()
        assert job.status == "completed"


class TestOneJobInFlightPerKey:
    def test_a_second_in_flight_job_for_a_key_is_refused(self):
        image_key = ImageKey.objects.create(key="hero")
        make_job(image_key)
        with pytest.raises(IntegrityError):
            make_job(image_key, status=JobStatus.PROCESSING)

    def test_finished_jobs_do_not_count(self):
        image_key = ImageKey.objects.create(key="hero")
        make_job(image_key, status=JobStatus.COMPLETED)
        make_job(image_key, status=JobStatus.FAILED)
        make_job(image_key)


class TestCreditsSpent:
    def test_counts_sent_and_queued_jobs_only(self):
        since = timezone.now()
        make_job(credits=40, remote_id="job_a", status=JobStatus.COMPLETED)
        make_job(credits=40)
        make_job(credits=40, status=JobStatus.FAILED)
        assert Job.objects.credits_spent_since(since) == 80

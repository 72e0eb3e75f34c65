"""Model rules that the database itself enforces: forward-only jobs, one job in flight per key."""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from django_neuraldraft.choices import JobStatus
from django_neuraldraft.managers import statuses_before
from django_neuraldraft.models import CreditSpend, ImageKey, Job
from tests.helpers import add_version

pytestmark = pytest.mark.django_db


def make_job(image_key=None, status=JobStatus.PENDING, **fields):
    return Job.objects.create(
        image_key=image_key, status=status, idempotency_key=f"idem-{Job.objects.count()}", **fields
    )


class TestRecentDurations:
    def test_the_latest_completed_generations_on_the_apis_clock_else_on_ours(self):
        start = timezone.now() - timedelta(hours=1)
        second = timedelta(seconds=1)
        make_job(
            status=JobStatus.COMPLETED,
            remote_created_at=start,
            remote_updated_at=start + 30 * second,
        )
        ours = make_job(status=JobStatus.COMPLETED)
        Job.objects.filter(pk=ours.pk).update(created_at=start, finished_at=start + 40 * second)
        make_job(status=JobStatus.FAILED, remote_created_at=start, remote_updated_at=start)
        make_job(
            status=JobStatus.COMPLETED, remote_created_at=start, remote_updated_at=start - second
        )
        assert Job.objects.recent_durations(10) == [30.0, 40.0]
        # The newest row, whose times run backwards, counts towards the limit.
        assert Job.objects.recent_durations(2) == [30.0]


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


class TestCreditsReserved:
    def test_jobs_reserve_credits_until_accepted_or_ended(self):
        make_job(credits=40, remote_id="job_a", status=JobStatus.PROCESSING)
        make_job(credits=40, status=JobStatus.FAILED)
        make_job(credits=40, sent_at=timezone.now())
        make_job(credits=40)
        assert Job.objects.credits_reserved() == 80


class TestCreditLedger:
    def test_the_ledger_counts_from_a_moment_on(self):
        since = timezone.now()
        CreditSpend.objects.create(credits=40, spent_at=since - timedelta(seconds=1))
        CreditSpend.objects.create(credits=40, spent_at=since)
        CreditSpend.objects.create(credits=1)
        assert CreditSpend.objects.credits_since(since) == 41

    def test_deleting_its_job_keeps_the_spending(self):
        job = make_job(credits=40, remote_id="job_a", status=JobStatus.COMPLETED)
        CreditSpend.objects.create(credits=40, job=job)
        job.delete()
        assert list(CreditSpend.objects.values_list("credits", "job")) == [(40, None)]


@pytest.mark.django_db(transaction=True)
def test_the_ledgers_migration_records_what_was_spent_today():
    executor = MigrationExecutor(connection)
    adding = ("neuraldraft", "0009_creditspend")
    before = [parent.key for parent in executor.loader.graph.node_map[adding].parents]
    executor.migrate(before)
    old_apps = executor.loader.project_state(before).apps
    old_job = old_apps.get_model("neuraldraft", "Job")
    image_key = old_apps.get_model("neuraldraft", "ImageKey").objects.create(key="hero")
    sent = old_job.objects.create(idempotency_key="a", remote_id="job_a", credits=40)
    old_job.objects.create(idempotency_key="b", status=JobStatus.FAILED, credits=40)
    yesterday = old_job.objects.create(idempotency_key="c", remote_id="job_c", credits=40)
    old_job.objects.filter(pk=yesterday.pk).update(created_at=timezone.now() - timedelta(days=1))
    for origin, credits in [("uploaded", 1), ("generated", 40)]:
        old_apps.get_model("neuraldraft", "ImageVersion").objects.create(
            image_key=image_key,
            file=f"neuraldraft/hero/{origin}.png",
            width=16,
            height=9,
            bytes=100,
            mime_type="image/png",
            sha256="0" * 64,
            source_url="https://cdn.neuraldraft.io/a.png",
            origin=origin,
            credits_charged=credits,
        )

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())

    spent = CreditSpend.objects.order_by("credits").values_list("credits", "job")
    assert list(spent) == [(1, None), (40, sent.pk)]


class TestRejectResult:
    def test_a_completed_job_without_an_image_may_fail(self):
        job = make_job(status=JobStatus.COMPLETED)
        assert Job.objects.reject_result(job.pk, error_code="invalid_image")
        job.refresh_from_db()
        assert (job.status, job.error_code) == ("failed", "invalid_image")

    @pytest.mark.parametrize("status", [JobStatus.PENDING, JobStatus.CANCELLED, JobStatus.FAILED])
    def test_no_other_status_moves(self, status):
        job = make_job(status=status)
        assert not Job.objects.reject_result(job.pk, error_code="invalid_image")

    def test_a_bound_image_is_never_disowned(self):
        image_key = ImageKey.objects.create(key="hero")
        job = make_job(image_key, status=JobStatus.COMPLETED)
        version = add_version(image_key, "a.png")
        version.job = job
        version.save(update_fields=["job"])
        assert not Job.objects.reject_result(job.pk, error_code="invalid_image")


class TestSendOrCancel:
    def test_a_job_being_sent_cannot_be_cancelled_locally(self):
        job = make_job()
        assert Job.objects.start_sending(job.pk)
        assert not Job.objects.cancel_unsent(job.pk)
        assert Job.objects.request_cancel(job.pk, unsent_only=True)

    def test_a_job_cancelled_first_is_never_sent(self):
        job = make_job()
        assert Job.objects.cancel_unsent(job.pk)
        assert not Job.objects.start_sending(job.pk)


class TestChainTokens:
    def test_only_the_holder_of_the_token_claims_and_passes_on(self):
        job = make_job(chain_token="a" * 32)
        assert not Job.objects.claim_chain(job.pk, "b" * 32, "r" * 32)
        assert Job.objects.claim_chain(job.pk, "a" * 32, "r" * 32)
        assert not Job.objects.claim_chain(job.pk, "a" * 32, "s" * 32)
        assert Job.objects.pass_chain(job.pk, "r" * 32, "n" * 32, timezone.now())
        assert not Job.objects.pass_chain(job.pk, "r" * 32, "m" * 32, timezone.now())
        job.refresh_from_db()
        assert job.chain_token == "n" * 32

    def test_a_claim_without_a_token_takes_the_chain_over(self):
        job = make_job(chain_token="a" * 32)
        assert Job.objects.claim_chain(job.pk, None, "r" * 32)
        assert not Job.objects.claim_chain(job.pk, "a" * 32, "s" * 32)

    def test_jobs_without_a_live_chain(self):
        now = timezone.now()
        late = make_job(chain_due_at=now - timedelta(minutes=5))
        make_job(chain_due_at=now)
        lost = make_job(status=JobStatus.PROCESSING, chain_due_at=None)
        make_job(status=JobStatus.FAILED, chain_due_at=None)
        before = now - timedelta(minutes=1)
        assert set(Job.objects.without_live_chain(before=before)) == {late, lost}

"""A server's Retry-After is followed for RETRY_AFTER_MAX at most; a longer one crashes no step.

The client reads any ``Retry-After`` as at most a day (``tests/client/test_retries.py``);
the back-off policy follows it for at most ``RETRY_AFTER_MAX``, the API's polls
and the CDN's downloads alike.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from django_neuraldraft import services, tasks
from django_neuraldraft.choices import JobStatus
from django_neuraldraft.models import ImageKey, Job
from django_neuraldraft.services.backoff import RETRY_AFTER_MAX, retry_delay

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("neuraldraft_settings")]


@pytest.fixture
def hero() -> ImageKey:
    return ImageKey.objects.create(key="hero.background", prompt="A quiet harbour at dawn")


def completed(hero: ImageKey, sandbox) -> Job:
    job = services.submit(services.request_generation(hero))
    sandbox.finish_job(job.remote_id)
    return services.refresh_job(job)


def test_a_retry_after_is_followed_up_to_the_maximum():
    assert retry_delay(1, 30.0) == 30.0
    assert retry_delay(1, 86_400.0) == RETRY_AFTER_MAX


def test_a_rate_limited_poll_waits_at_most_the_maximum(hero, sandbox):
    job = services.submit(services.request_generation(hero))
    sandbox.set_fault("rate_limit", retry_after=86_400, path="/v1/jobs/")
    outcome = services.poll_once(job)
    assert outcome.next_poll_in == RETRY_AFTER_MAX
    assert outcome.job.next_poll_at <= timezone.now() + timedelta(seconds=RETRY_AFTER_MAX)


def test_an_absurd_retry_after_on_a_poll_is_only_a_transient_error(hero, sandbox):
    job = services.submit(services.request_generation(hero))
    sandbox.set_fault("rate_limit", retry_after=10**12, path="/v1/jobs/")
    outcome = services.poll_once(job)
    assert outcome.next_poll_in == RETRY_AFTER_MAX
    assert outcome.job.status == JobStatus.PENDING
    assert "429" in outcome.job.last_error


def test_an_absurd_retry_after_from_the_cdn_is_only_a_transient_error(hero, sandbox, published):
    job = completed(hero, sandbox)
    sandbox.set_fault("rate_limit", retry_after=10**12, path="/cdn/")
    tasks.ingest_job(job.pk)
    (message,) = published
    assert message.name == "neuraldraft.ingest_job"
    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED
    assert job.chain_due_at <= timezone.now() + timedelta(seconds=RETRY_AFTER_MAX)

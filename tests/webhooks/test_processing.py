"""What a verified delivery sets off, against the sandbox: one GET of the job, then its image."""

from __future__ import annotations

import pytest

from django_neuraldraft import services, tasks, webhooks
from django_neuraldraft.choices import JobStatus, WebhookOutcome
from django_neuraldraft.models import ImageKey, WebhookEvent
from tests.helpers import run_published

from .conftest import event_body

pytestmark = pytest.mark.django_db


@pytest.fixture
def delivered(deliver, published, django_capture_on_commit_callbacks):
    """Deliver ``body`` and run the tasks it queues in this process; return the event."""

    def send(body: bytes) -> WebhookEvent:
        with django_capture_on_commit_callbacks(execute=True):
            assert deliver(body).status_code == 200
        with django_capture_on_commit_callbacks(execute=True):
            run_published(published)
        return WebhookEvent.objects.latest("pk")

    return send


def test_a_delivery_binds_the_image_with_one_get_of_the_job(finished_job, sandbox, delivered):
    event = delivered(event_body(finished_job.remote_id))
    finished_job.refresh_from_db()
    assert finished_job.status == JobStatus.COMPLETED
    assert ImageKey.objects.get().current.job == finished_job
    assert (event.outcome, event.job) == (WebhookOutcome.PROCESSED, finished_job)
    sandbox.assert_called("GET", f"/v1/jobs/{finished_job.remote_id}", times=1)


def test_nothing_in_the_body_is_trusted_but_the_job_id(finished_job, sandbox, delivered):
    body = event_body(
        finished_job.remote_id,
        data={"job_id": finished_job.remote_id, "url": "http://attacker.test/x.png"},
    )
    delivered(body)
    version = ImageKey.objects.get().current
    assert version.source_url.startswith(sandbox.origin)


def test_the_same_event_twice_is_processed_once(finished_job, sandbox, delivered):
    body = event_body(finished_job.remote_id)
    first = delivered(body)
    second = delivered(body)
    assert (first.outcome, second.outcome) == (WebhookOutcome.PROCESSED, WebhookOutcome.DUPLICATE)
    sandbox.assert_called("GET", f"/v1/jobs/{finished_job.remote_id}", times=1)


def test_a_job_that_is_not_ours_is_ignored(webhook_settings, sandbox, delivered):
    event = delivered(event_body("job_notours"))
    assert (event.outcome, event.error) == (WebhookOutcome.IGNORED, "No job of ours has this id.")
    assert not [r for r in sandbox.requests if r.path.startswith("/v1/jobs/")]


def test_a_delivery_for_a_running_job_polls_it_once_and_leaves_its_chain_alone(
    webhook_settings, sandbox, deliver, published, django_capture_on_commit_callbacks
):
    image_key = ImageKey.objects.create(key="hero.background", prompt="A harbour at dawn")
    job = services.submit(services.request_generation(image_key))
    job.refresh_from_db()
    chain = (job.chain_token, job.chain_due_at)
    with django_capture_on_commit_callbacks(execute=True):
        deliver(event_body(job.remote_id))
    published.clear()
    tasks.process_webhook(WebhookEvent.objects.get().pk)
    job.refresh_from_db()
    assert job.status != JobStatus.COMPLETED and job.polls == 1
    assert (job.chain_token, job.chain_due_at) == chain
    assert published == []


def test_a_failed_refresh_is_recorded_and_the_delivery_can_be_replayed(
    finished_job, sandbox, deliver, published, django_capture_on_commit_callbacks
):
    sandbox.set_fault("status", status=503, path=f"/v1/jobs/{finished_job.remote_id}")
    with django_capture_on_commit_callbacks(execute=True):
        deliver(event_body(finished_job.remote_id))
    event = WebhookEvent.objects.get()
    with pytest.raises(webhooks.Unfinished):
        webhooks.process(event.pk)
    event.refresh_from_db()
    assert (event.outcome, event.error) == (WebhookOutcome.FAILED, webhooks.UNFINISHED)
    sandbox.clear_faults()
    published.clear()
    with django_capture_on_commit_callbacks(execute=True):
        webhooks.replay(event)
    assert [m.name for m in published] == ["neuraldraft.process_webhook"]
    tasks.process_webhook(event.pk)
    event.refresh_from_db()
    assert (event.outcome, event.replays) == (WebhookOutcome.PROCESSED, 1)
    assert ImageKey.objects.get().current is not None


def test_a_refresh_that_fails_for_now_is_retried_by_the_task_not_left_to_the_safety_net(
    finished_job, sandbox, deliver, django_capture_on_commit_callbacks
):
    job_path = f"/v1/jobs/{finished_job.remote_id}"
    sandbox.set_fault("status", status=503, path=job_path, count=1)
    with django_capture_on_commit_callbacks(execute=True):
        deliver(event_body(finished_job.remote_id))
    event = WebhookEvent.objects.get()
    # apply() runs the task and its retries at once, as a worker would after the backoff.
    tasks.process_webhook.apply(args=(event.pk,))
    event.refresh_from_db()
    assert event.outcome == WebhookOutcome.PROCESSED
    assert ImageKey.objects.get().current is not None
    assert [r.status for r in sandbox.requests if r.path == job_path] == [503, 200]


def test_an_unverified_delivery_cannot_be_replayed(webhook_settings, deliver):
    deliver(event_body("job_1"), signed="t=1,v1=" + "0" * 64)
    with pytest.raises(webhooks.RejectedError):
        webhooks.replay(WebhookEvent.objects.get())


def test_a_processed_delivery_is_not_replayed(finished_job, sandbox, delivered, published):
    event = delivered(event_body(finished_job.remote_id))
    published.clear()
    assert webhooks.replay(event) is False
    event.refresh_from_db()
    assert (event.outcome, event.replays) == (WebhookOutcome.PROCESSED, 0)
    assert published == []

"""The job admin: a read-only mirror with Refresh and Cancel."""

from __future__ import annotations

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.urls import reverse

from django_neuraldraft import services
from django_neuraldraft.choices import JobStatus
from django_neuraldraft.models import Job

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("neuraldraft_settings")]

CHANGELIST = reverse("admin:neuraldraft_job_changelist")


def change_url(job) -> str:
    return reverse("admin:neuraldraft_job_change", args=[job.pk])


@pytest.fixture
def running(hero, sandbox, admin_user):
    return services.submit(services.request_generation(hero, requested_by=admin_user))


class TestReadOnly:
    def test_list_shows_the_mirror(self, admin_client, running, hero):
        page = admin_client.get(CHANGELIST).content.decode()
        assert running.remote_id in page
        assert '<span class="nd-badge nd-badge--pending">pending</span>' in page
        assert reverse("admin:neuraldraft_imagekey_change", args=[hero.pk]) in page
        assert "delete_selected" not in page

    def test_change_page_is_read_only_with_pretty_json(self, admin_client, running):
        response = admin_client.get(change_url(running))
        page = response.content.decode()
        assert response.status_code == 200
        assert 'name="status"' not in page
        assert '<pre class="nd-json">{\n  &quot;aspect_ratio&quot;: &quot;16:9&quot;' in page
        assert "Save" not in page

    def test_a_job_retried_through_an_outage_shows_why(self, admin_client, hero, sandbox):
        sandbox.set_fault("status", status=503, method="POST", path="/v1/images")
        job = services.request_generation(hero)
        services.poll_once(job)
        page = admin_client.get(change_url(job)).content.decode()
        assert "Last error" in page
        assert "ServerError: 503 service_unavailable" in page
        assert "Failed attempts" in page

    def test_no_add_no_edit_no_delete_while_running(self, admin_client, running):
        assert admin_client.get(reverse("admin:neuraldraft_job_add")).status_code == 403
        admin_client.post(change_url(running), {"status": "completed", "progress": 100})
        running.refresh_from_db()
        assert running.status == JobStatus.PENDING
        delete = reverse("admin:neuraldraft_job_delete", args=[running.pk])
        assert admin_client.post(delete, {"post": "yes"}).status_code == 403
        assert Job.objects.filter(pk=running.pk).exists()

    def test_a_finished_job_may_be_deleted(self, admin_client, running):
        services.cancel(running)
        delete = reverse("admin:neuraldraft_job_delete", args=[running.pk])
        admin_client.post(delete, {"post": "yes"})
        assert not Job.objects.filter(pk=running.pk).exists()

    def test_deleting_a_finished_job_does_not_refund_its_credits(
        self, admin_client, hero, sandbox, settings
    ):
        settings.NEURALDRAFT = {**settings.NEURALDRAFT, "DAILY_CREDIT_BUDGET": 40}
        job = services.submit(services.request_generation(hero))
        sandbox.finish_job(job.remote_id)
        services.poll_once(job)

        delete = reverse("admin:neuraldraft_job_delete", args=[job.pk])
        admin_client.post(delete, {"post": "yes"})

        assert not Job.objects.filter(pk=job.pk).exists()
        assert services.credits_left_today() == 0


class TestActions:
    def test_refresh_polls_through_the_service(self, admin_client, running, sandbox, hero):
        sandbox.finish_job(running.remote_id)
        admin_client.post(
            CHANGELIST, {"action": "refresh_selected", ACTION_CHECKBOX_NAME: [running.pk]}
        )
        running.refresh_from_db()
        hero.refresh_from_db()
        assert running.status == JobStatus.COMPLETED
        assert hero.current.job == running

    def test_messages_keep_the_remote_id_as_written(self, admin_client, running, sandbox):
        sandbox.finish_job(running.remote_id)
        response = admin_client.post(
            CHANGELIST,
            {"action": "refresh_selected", ACTION_CHECKBOX_NAME: [running.pk]},
            follow=True,
        )
        assert f"Job {running.remote_id}: completed, 100%." in response.content.decode()

    def test_cancel_needs_cancel_job(self, editor_client, producer_client, running, sandbox):
        data = {"action": "cancel_selected", ACTION_CHECKBOX_NAME: [running.pk]}
        assert 'value="cancel_selected"' not in editor_client.get(CHANGELIST).content.decode()
        editor_client.post(CHANGELIST, data)
        running.refresh_from_db()
        assert running.status == JobStatus.PENDING
        producer_client.post(CHANGELIST, data)
        running.refresh_from_db()
        assert running.status == JobStatus.CANCELLED

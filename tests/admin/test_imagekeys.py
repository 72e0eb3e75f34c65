"""The image key admin: buttons, their permissions and CSRF, and what each one calls."""

from __future__ import annotations

import io

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.messages import get_messages
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse

from django_neuraldraft import renditions, services
from django_neuraldraft.choices import ImageOrigin, JobStatus
from django_neuraldraft.models import ImageKey, ImageVersion, Job
from tests.helpers import add_version, create_image_key
from tests.test_publishing import png_bytes

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("neuraldraft_settings")]

TOOLS = ["generate", "upload", "cancel", "refresh"]


def url(name: str, *args) -> str:
    return reverse(f"admin:neuraldraft_imagekey_{name}", args=args)


def messages_of(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def running_job(image_key, sandbox) -> Job:
    return services.submit(services.request_generation(image_key))


def stored_names(storage, folder: str = "") -> list[str]:
    folders, files = storage.listdir(folder)
    prefix = f"{folder}/" if folder else ""
    names = [prefix + name for name in files]
    for sub in folders:
        names += stored_names(storage, prefix + sub)
    return names


class TestChangePage:
    def test_shows_the_image_history_and_provenance(self, admin_client, hero, admin_user):
        first = add_version(hero, "neuraldraft/hero.background/a.png")
        second = add_version(hero, "neuraldraft/hero.background/b.png")
        ImageVersion.objects.filter(pk=second.pk).update(
            prompt="A harbour at dusk", credits_charged=40, created_by=admin_user
        )
        hero.current = second
        hero.save()
        page = admin_client.get(url("change", hero.pk)).content.decode()
        assert f'data-nd-image="{hero.pk}"' in page
        assert "/media/neuraldraft/hero.background/b.png" in page
        assert "A harbour at dusk" in page and "40 credits" in page and "asked by admin" in page
        assert f'form="nd-use-{first.pk}"' in page  # the older one can be used again
        assert f'form="nd-use-{second.pk}"' not in page  # the one on show cannot
        assert f'id="nd-use-{first.pk}"' in page

    def test_marks_the_regions_the_live_update_fetches_again(self, admin_client, hero):
        """admin.js swaps these from a fresh copy of the page when a generation ends."""
        page = admin_client.get(url("change", hero.pk)).content.decode()
        for region in ("tools", "panel", "history", "forms"):
            assert page.count(f'data-nd-region="{region}"') == 1, region

    def test_a_producer_sees_every_button(self, producer_client, hero, sandbox):
        running_job(hero, sandbox)
        page = producer_client.get(url("change", hero.pk)).content.decode()
        for name in TOOLS:
            assert url(name, hero.pk) in page

    def test_an_editor_without_permissions_sees_no_spending_button(
        self, editor_client, hero, sandbox
    ):
        running_job(hero, sandbox)
        page = editor_client.get(url("change", hero.pk)).content.decode()
        for name in ["generate", "upload", "cancel"]:
            assert url(name, hero.pk) not in page
        assert url("refresh", hero.pk) in page  # following a job spends nothing

    def test_generate_reads_regenerate_once_there_is_an_image(self, admin_client):
        image_key = create_image_key("hero.background", file="a.png", prompt="A harbour")
        page = admin_client.get(url("change", image_key.pk)).content.decode()
        assert ">Regenerate</a>" in page


class TestGenerate:
    def test_get_shows_the_prefilled_form_and_cost_and_spends_nothing(
        self, admin_client, hero, sandbox, settings
    ):
        settings.NEURALDRAFT = {**settings.NEURALDRAFT, "DAILY_CREDIT_BUDGET": 100}
        response = admin_client.get(url("generate", hero.pk))
        page = response.content.decode()
        assert response.status_code == 200
        assert "A quiet harbour at dawn</textarea>" in page
        assert "One image costs 40 credits." in page
        assert "100 credits left of today's budget." in page
        assert not Job.objects.exists()
        assert sandbox.requests == []

    def test_post_saves_the_key_and_asks_for_an_image(
        self, producer_client, producer, hero, published, commit
    ):
        with commit():
            response = producer_client.post(
                url("generate", hero.pk),
                {"prompt": "A harbour at dusk", "style": "watercolour", "aspect_ratio": "4:3"},
            )
        assert response.status_code == 302
        assert response["Location"] == url("change", hero.pk)
        hero.refresh_from_db()
        assert (hero.prompt, hero.style, hero.aspect_ratio) == (
            "A harbour at dusk",
            "watercolour",
            "4:3",
        )
        job = Job.objects.get()
        assert job.requested_by == producer
        assert job.params["prompt"] == "A harbour at dusk"
        assert [task.name for task in published] == ["neuraldraft.submit_generation"]
        assert messages_of(response) == [
            f"Generation of hero.background started (job #{job.pk}, 40 credits)."
        ]

    def test_an_empty_prompt_is_refused_and_changes_nothing(self, admin_client, hero):
        response = admin_client.post(url("generate", hero.pk), {"prompt": "  "})
        assert response.status_code == 200
        assert "This field is required." in response.content.decode()
        hero.refresh_from_db()
        assert hero.prompt == "A quiet harbour at dawn"
        assert not Job.objects.exists()

    def test_a_refused_budget_keeps_the_key_as_it_was(self, admin_client, hero, settings):
        settings.NEURALDRAFT = {**settings.NEURALDRAFT, "DAILY_CREDIT_BUDGET": 10}
        response = admin_client.post(url("generate", hero.pk), {"prompt": "A new prompt"})
        assert response.status_code == 200
        assert "costs 40 credits" in messages_of(response)[0]
        hero.refresh_from_db()
        assert hero.prompt == "A quiet harbour at dawn"
        assert not Job.objects.exists()

    @pytest.mark.parametrize("name", ["generate", "upload"])
    def test_the_form_pages_are_styled_like_the_change_form(self, admin_client, hero, name):
        page = admin_client.get(url(name, hero.pk)).content.decode()
        assert "admin/css/forms.css" in page
        assert 'class="module aligned"' in page

    def test_the_alt_text_proposal_is_applied_only_when_confirmed(self, admin_client, hero):
        page = admin_client.get(url("generate", hero.pk)).content.decode()
        assert "Use “A quiet harbour at dawn” as alternative text" in page
        admin_client.post(url("generate", hero.pk), {"prompt": hero.prompt})
        hero.refresh_from_db()
        assert hero.alt_text == ""
        Job.objects.all().delete()
        admin_client.post(
            url("generate", hero.pk), {"prompt": hero.prompt, "use_proposed_alt_text": "on"}
        )
        hero.refresh_from_db()
        assert hero.alt_text == "A quiet harbour at dawn"

    def test_no_proposal_is_offered_when_the_key_has_alt_text(self, admin_client, hero):
        hero.alt_text = "The harbour at first light"
        hero.save()
        page = admin_client.get(url("generate", hero.pk)).content.decode()
        assert "use_proposed_alt_text" not in page
        data = {"prompt": hero.prompt, "alt_text": "", "use_proposed_alt_text": "on"}
        admin_client.post(url("generate", hero.pk), data)
        hero.refresh_from_db()
        assert hero.alt_text == ""  # the editor emptied it; nothing was proposed in its place

    def test_the_change_form_offers_the_proposal_too(self, admin_client, hero):
        data = {"key": hero.key, "prompt": hero.prompt, "style": "", "aspect_ratio": "16:9"}
        admin_client.post(url("change", hero.pk), {**data, "alt_text": ""})
        hero.refresh_from_db()
        assert hero.alt_text == ""
        admin_client.post(
            url("change", hero.pk), {**data, "alt_text": "", "use_proposed_alt_text": "on"}
        )
        hero.refresh_from_db()
        assert hero.alt_text == "A quiet harbour at dawn"


class TestPermissions:
    @pytest.mark.parametrize("name", ["generate", "upload"])
    @pytest.mark.parametrize("method", ["get", "post"])
    def test_spending_urls_refuse_users_without_generate_image(
        self, editor_client, hero, sandbox, name, method
    ):
        response = getattr(editor_client, method)(url(name, hero.pk), {"prompt": "x"})
        assert response.status_code == 403
        assert not Job.objects.exists()
        assert sandbox.requests == []

    def test_cancel_refuses_users_without_cancel_job(self, editor_client, hero, sandbox):
        job = running_job(hero, sandbox)
        response = editor_client.post(url("cancel", hero.pk))
        assert response.status_code == 403
        job.refresh_from_db()
        assert job.status == JobStatus.PENDING
        assert len(sandbox.assert_called("POST", "/v1/images")) == 1
        assert not [request for request in sandbox.requests if request.path.endswith("/cancel")]

    def test_anonymous_users_are_sent_to_the_login(self, client, hero):
        response = client.get(url("generate", hero.pk))
        assert response.status_code == 302
        assert "/admin/login/" in response["Location"]

    @pytest.mark.parametrize("name", ["cancel", "refresh"])
    def test_buttons_are_post_only(self, admin_client, hero, name):
        assert admin_client.get(url(name, hero.pk)).status_code == 405

    @pytest.mark.parametrize("name", ["generate", "cancel", "refresh"])
    def test_posts_without_a_csrf_token_are_refused(self, admin_user, hero, name):
        client = Client(enforce_csrf_checks=True)
        client.force_login(admin_user)
        response = client.post(url(name, hero.pk), {"prompt": "x"})
        assert response.status_code == 403
        assert "CSRF" in response.content.decode()
        assert not Job.objects.exists()


class TestCancelAndRefresh:
    def test_cancel_calls_the_service(self, producer_client, hero, sandbox):
        job = running_job(hero, sandbox)
        response = producer_client.post(url("cancel", hero.pk))
        assert response.status_code == 302
        job.refresh_from_db()
        assert job.status == JobStatus.CANCELLED
        sandbox.assert_called("POST", f"/v1/jobs/{job.remote_id}/cancel")
        assert messages_of(response) == [f"Job #{job.pk} of hero.background is cancelled."]

    def test_refresh_polls_once_and_ingests_a_finished_image(self, producer_client, hero, sandbox):
        job = running_job(hero, sandbox)
        sandbox.finish_job(job.remote_id)
        response = producer_client.post(url("refresh", hero.pk))
        hero.refresh_from_db()
        assert hero.current is not None and hero.current.job == job
        assert messages_of(response) == [f"Job #{job.pk}: completed, 100%. Its image is stored."]

    def test_an_api_error_shows_code_detail_and_request_id_never_the_key(
        self, producer_client, hero, sandbox, api_key
    ):
        job = running_job(hero, sandbox)
        sandbox.set_fault("status", status=403, code="forbidden", path="/v1/jobs/")
        response = producer_client.post(url("cancel", hero.pk))
        (message,) = messages_of(response)
        request_id = sandbox.last_request("POST", f"/v1/jobs/{job.remote_id}/cancel")
        assert message.startswith("forbidden: ")
        assert "(request id req_" in message
        assert api_key not in message and api_key[-4:] not in message
        assert request_id is not None


class TestUpload:
    def test_a_good_file_goes_on_show(self, producer_client, producer, hero, sandbox):
        upload = io.BytesIO(png_bytes())
        upload.name = "mine.png"
        response = producer_client.post(url("upload", hero.pk), {"file": upload})
        assert response.status_code == 302
        hero.refresh_from_db()
        assert hero.current.origin == ImageOrigin.UPLOADED
        assert hero.current.created_by == producer

    def test_a_bad_file_gives_a_clear_error_and_changes_nothing(
        self, producer_client, hero, sandbox
    ):
        upload = io.BytesIO(b"GIF89a but not really")
        upload.name = "fake.gif"
        response = producer_client.post(url("upload", hero.pk), {"file": upload})
        assert response.status_code == 200
        page = response.content.decode()
        assert "<li>The uploaded file is not a JPEG, PNG, WebP or GIF image.</li>" in page
        assert "download" not in page.lower()
        assert sandbox.requests == []
        assert not ImageVersion.objects.exists()

    def test_the_page_gives_the_cost_and_the_budget_an_upload_counts_against(
        self, producer_client, hero, sandbox, settings
    ):
        settings.NEURALDRAFT = {**settings.NEURALDRAFT, "DAILY_CREDIT_BUDGET": 100}
        page = producer_client.get(url("upload", hero.pk)).content.decode()
        assert "An upload costs 1 credit at Neural Draft." in page
        assert "100 credits left of today's budget." in page
        upload = io.BytesIO(png_bytes())
        upload.name = "mine.png"
        producer_client.post(url("upload", hero.pk), {"file": upload})
        page = producer_client.get(url("generate", hero.pk)).content.decode()
        assert "99 credits left of today's budget." in page

    def test_a_spent_budget_refuses_the_upload(self, producer_client, hero, sandbox, settings):
        settings.NEURALDRAFT = {**settings.NEURALDRAFT, "DAILY_CREDIT_BUDGET": 0}
        upload = io.BytesIO(png_bytes())
        upload.name = "mine.png"
        response = producer_client.post(url("upload", hero.pk), {"file": upload})
        assert response.status_code == 200
        assert "it would be refused" in response.content.decode()
        assert messages_of(response)[0].startswith("An upload costs 1 credit")
        assert sandbox.requests == []
        assert not ImageVersion.objects.exists()

    def test_a_corrupt_file_is_named_as_the_upload(self, producer_client, hero, sandbox):
        truncated = png_bytes()[:-20]
        upload = io.BytesIO(truncated)
        upload.name = "cut.png"
        response = producer_client.post(url("upload", hero.pk), {"file": upload})
        page = response.content.decode()
        assert "<li>The uploaded file is not a valid image: truncated PNG" in page
        assert sandbox.requests == []
        assert not ImageVersion.objects.exists()


class TestVersions:
    def test_use_this_version_rolls_back(self, admin_client, hero):
        first = add_version(hero, "a.png")
        second = add_version(hero, "b.png")
        hero.current = second
        hero.save()
        response = admin_client.post(url("rollback", hero.pk, first.pk))
        assert response.status_code == 302
        hero.refresh_from_db()
        assert hero.current == first

    def test_rollback_needs_change_permission_and_a_post(self, client, django_user_model, hero):
        from tests.admin.conftest import staff_user

        first = add_version(hero, "a.png")
        viewer = staff_user(django_user_model, "viewer", "view_imagekey")
        client.force_login(viewer)
        assert client.post(url("rollback", hero.pk, first.pk)).status_code == 403
        assert client.get(url("rollback", hero.pk, first.pk)).status_code == 405
        hero.refresh_from_db()
        assert hero.current is None

    def test_a_version_of_another_key_is_not_found(self, admin_client, hero):
        other = create_image_key("other.key", file="x.png")
        response = admin_client.post(url("rollback", hero.pk, other.current_id))
        assert response.status_code == 404

    def test_candidates_are_shown_beside_the_image_and_published(self, admin_client, hero):
        on_show = add_version(hero, "a.png")
        hero.current = on_show
        hero.save()
        candidate = add_version(hero, "b.png")
        ImageVersion.objects.filter(pk=candidate.pk).update(candidate=True)
        page = admin_client.get(url("change", hero.pk)).content.decode()
        assert f'form="nd-publish-{candidate.pk}"' in page
        assert f'href="{url("discard", hero.pk, candidate.pk)}"' in page
        assert "to review" in page
        admin_client.post(url("publish", hero.pk, candidate.pk))
        hero.refresh_from_db()
        assert hero.current_id == candidate.pk

    def test_discard_asks_first_then_removes_the_candidate(self, admin_client, hero):
        candidate = add_version(hero, "b.png")
        ImageVersion.objects.filter(pk=candidate.pk).update(candidate=True, credits_charged=40)
        discard = url("discard", hero.pk, candidate.pk)

        page = admin_client.get(discard)

        assert page.status_code == 200
        html = page.content.decode()
        assert f"Discard candidate #{candidate.pk} of hero.background?" in html
        assert "Its 40 credits are spent all the same." in html
        assert "/media/b.png" in html and '<form method="post">' in html
        assert ImageVersion.objects.filter(pk=candidate.pk).exists()

        admin_client.post(discard)

        assert not ImageVersion.objects.filter(pk=candidate.pk).exists()
        assert ImageKey.objects.filter(pk=hero.pk).exists()

    def test_discarding_what_is_no_longer_a_candidate_goes_back(self, admin_client, hero):
        version = add_version(hero, "b.png")
        response = admin_client.get(url("discard", hero.pk, version.pk), follow=True)
        assert response.redirect_chain == [(url("change", hero.pk), 302)]
        assert "no longer awaiting review" in response.content.decode()
        assert ImageVersion.objects.filter(pk=version.pk).exists()


@pytest.mark.django_db(transaction=True)
class TestBrokerDown:
    """The job is saved before its task is queued; a broker that is down is a warning."""

    @pytest.fixture
    def broker_down(self):
        import socket

        from celery import Celery, current_app

        previous = current_app._get_current_object()
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            app = Celery("broker-down", set_as_current=False)
            app.conf.update(broker_url=f"redis://127.0.0.1:{sock.getsockname()[1]}//")
            app.set_current()
            yield app
        previous.set_current()
        app.close()

    def test_generate_saves_the_job_and_says_the_sweep_will_send_it(
        self, admin_client, hero, broker_down
    ):
        response = admin_client.post(url("generate", hero.pk), {"prompt": "A harbour at dusk"})
        assert response.status_code == 302
        job = Job.objects.get()
        (message,) = messages_of(response)
        assert message.startswith(f"Job #{job.pk} is saved, but its submit_generation task")
        hero.refresh_from_db()
        assert hero.prompt == "A harbour at dusk"

    def test_bulk_reports_each_key(self, admin_client, hero, broker_down):
        from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME

        response = admin_client.post(
            url("changelist"),
            {"action": "generate_selected", ACTION_CHECKBOX_NAME: [hero.pk], "post": "yes"},
        )
        (message,) = messages_of(response)
        assert message.startswith("Generation of hero.background: Job #")
        assert Job.objects.count() == 1


class TestDelete:
    """Deleting a key deletes its versions, then every file of theirs no other version uses."""

    IN_FLIGHT = "A generation of hero.background is still running: cancel it first, then delete."

    @pytest.fixture
    def with_files(self, hero, settings, empty_storage):
        """hero.background with two uploaded versions, the older one with renditions."""
        settings.NEURALDRAFT = {**settings.NEURALDRAFT, "RENDITION_WIDTHS": (80, 160)}
        older = services.upload(hero, io.BytesIO(png_bytes(color="#112233")))
        services.upload(hero, io.BytesIO(png_bytes(color="#445566")))
        renditions.make_for(older)
        assert stored_names(empty_storage)
        return hero

    def bulk_delete(self, client, image_key, **options):
        return client.post(
            url("changelist"),
            {"action": "delete_selected", ACTION_CHECKBOX_NAME: [image_key.pk], "post": "yes"},
            **options,
        )

    def test_deleting_a_key_leaves_no_file_behind(
        self, admin_client, with_files, empty_storage, commit
    ):
        with commit():
            response = admin_client.post(url("delete", with_files.pk), {"post": "yes"})

        assert response.status_code == 302
        assert not ImageKey.objects.exists() and not ImageVersion.objects.exists()
        assert stored_names(empty_storage) == []

    def test_the_bulk_delete_leaves_no_file_behind(
        self, admin_client, with_files, empty_storage, commit
    ):
        with commit():
            self.bulk_delete(admin_client, with_files)

        assert not ImageKey.objects.exists() and not ImageVersion.objects.exists()
        assert stored_names(empty_storage) == []

    def test_a_key_with_a_generation_in_flight_is_not_deleted(self, admin_client, hero, sandbox):
        running_job(hero, sandbox)

        page = admin_client.get(url("delete", hero.pk), follow=True)
        assert page.redirect_chain == [(url("change", hero.pk), 302)]
        assert self.IN_FLIGHT in page.content.decode()
        for response in (
            admin_client.post(url("delete", hero.pk), {"post": "yes"}, follow=True),
            self.bulk_delete(admin_client, hero, follow=True),
        ):
            assert self.IN_FLIGHT in response.content.decode()

        assert ImageKey.objects.filter(pk=hero.pk).exists()

    def test_a_generation_started_after_the_page_was_shown_still_refuses(self, hero, sandbox):
        running_job(hero, sandbox)

        with pytest.raises(ValidationError, match="still running"):
            services.delete_keys(ImageKey.objects.filter(pk=hero.pk))

        assert ImageKey.objects.filter(pk=hero.pk).exists()

"""A view-only staff user: every page reads, no button shows, every URL and action refuses."""

from __future__ import annotations

import io

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.test import Client
from django.urls import reverse

from django_neuraldraft import services
from django_neuraldraft.models import ImageVersion, Job
from tests.admin.conftest import staff_user
from tests.helpers import add_version
from tests.test_publishing import png_bytes

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("neuraldraft_settings")]


def url(name: str, *args) -> str:
    return reverse(f"admin:neuraldraft_imagekey_{name}", args=args)


@pytest.fixture
def viewer_client(django_user_model) -> Client:
    client = Client()
    client.force_login(
        staff_user(django_user_model, "viewer", "view_imagekey", "view_job", "view_imageversion")
    )
    return client


@pytest.fixture
def key_with_history(hero, sandbox):
    """hero.background showing one version, an older one, a candidate and a running job."""
    older = add_version(hero, "neuraldraft/hero.background/a.png")
    on_show = add_version(hero, "neuraldraft/hero.background/b.png")
    candidate = add_version(hero, "neuraldraft/hero.background/c.png")
    ImageVersion.objects.filter(pk=candidate.pk).update(candidate=True)
    hero.current = on_show
    hero.save()
    job = services.submit(services.request_generation(hero))
    return hero, older, candidate, job


def test_the_change_page_reads_but_offers_nothing(viewer_client, key_with_history):
    hero, older, candidate, _job = key_with_history
    response = viewer_client.get(url("change", hero.pk))
    page = response.content.decode()
    assert response.status_code == 200
    assert "/media/neuraldraft/hero.background/b.png" in page
    for name in ("generate", "upload", "cancel", "refresh"):
        assert url(name, hero.pk) not in page, name
    for name, version in (("rollback", older), ("publish", candidate), ("discard", candidate)):
        assert url(name, hero.pk, version.pk) not in page, name
    assert "Use this version" not in page
    assert "proposed" not in page  # the alt text proposal is a choice to make, not a field to read


@pytest.mark.parametrize("method", ["get", "post"])
@pytest.mark.parametrize("name", ["generate", "upload", "cancel", "refresh"])
def test_every_button_url_refuses(viewer_client, key_with_history, sandbox, name, method):
    hero, *_rest = key_with_history
    sent = len(sandbox.requests)
    upload = io.BytesIO(png_bytes())
    upload.name = "mine.png"
    response = getattr(viewer_client, method)(url(name, hero.pk), {"prompt": "x", "file": upload})
    post_only = name in ("cancel", "refresh")
    assert response.status_code == (405 if method == "get" and post_only else 403)
    assert len(sandbox.requests) == sent
    assert Job.objects.count() == 1


@pytest.mark.parametrize("name", ["rollback", "publish", "discard"])
def test_every_version_url_refuses(viewer_client, key_with_history, name):
    hero, older, candidate, _job = key_with_history
    version = older if name == "rollback" else candidate
    assert viewer_client.post(url(name, hero.pk, version.pk)).status_code == 403
    if name == "discard":  # its GET is the confirmation page
        assert viewer_client.get(url(name, hero.pk, version.pk)).status_code == 403
    hero.refresh_from_db()
    assert hero.current.file.name.endswith("b.png")
    assert ImageVersion.objects.filter(pk=candidate.pk, candidate=True).exists()


def test_no_action_is_offered_or_run(viewer_client, key_with_history, sandbox):
    hero, _older, _candidate, job = key_with_history
    keys_page = viewer_client.get(url("changelist")).content.decode()
    jobs_url = reverse("admin:neuraldraft_job_changelist")
    jobs_page = viewer_client.get(jobs_url).content.decode()
    assert "generate_selected" not in keys_page
    assert "refresh_selected" not in jobs_page and "cancel_selected" not in jobs_page
    sent = len(sandbox.requests)
    viewer_client.post(
        url("changelist"),
        {"action": "generate_selected", ACTION_CHECKBOX_NAME: [hero.pk], "post": "yes"},
    )
    for action in ("refresh_selected", "cancel_selected"):
        viewer_client.post(jobs_url, {"action": action, ACTION_CHECKBOX_NAME: [job.pk]})
    assert len(sandbox.requests) == sent
    assert Job.objects.count() == 1
    job.refresh_from_db()
    assert job.status == "pending"

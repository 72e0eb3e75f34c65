"""The raw API key is in no row, log record or repr, whatever a hostile answer does with it.

Each case runs the real pipeline (``request_generation`` -> ``submit`` ->
``poll_once``) against the sandbox, whose ``echo_authorization`` fault repeats
the ``Authorization`` header it received in an error detail, in headers, or in
a job answer (its message, error and a field name).
"""

from __future__ import annotations

import json
import logging

import pytest
from django.urls import reverse

from django_neuraldraft import services
from django_neuraldraft.client import NeuralDraftClient
from django_neuraldraft.exceptions import AuthenticationError, DownloadRefusedError
from django_neuraldraft.models import ImageKey, ImageVersion, Job
from django_neuraldraft.testing import SANDBOX_API_KEY

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("neuraldraft_settings")]


def everything_stored(job: Job) -> str:
    job.refresh_from_db()
    fields = {field.attname: getattr(job, field.attname) for field in Job._meta.concrete_fields}
    return json.dumps(fields, default=str, ensure_ascii=False) + repr(job)


@pytest.fixture
def client_for_sandbox(sandbox):
    with NeuralDraftClient(SANDBOX_API_KEY, sandbox.base_url) as client:
        yield client


@pytest.fixture
def submitted(sandbox):
    image_key = ImageKey.objects.create(key="hero.background", prompt="A quiet harbour at dawn")
    return services.submit(services.request_generation(image_key))


def test_a_job_answer_that_repeats_the_key(sandbox, submitted, caplog):
    caplog.set_level(logging.DEBUG)
    sandbox.set_fault("echo_authorization", into="job", path="/v1/jobs/", count=1)
    services.poll_once(submitted)
    assert SANDBOX_API_KEY in sandbox.requests[-1].headers["Authorization"]
    stored = everything_stored(submitted)
    assert submitted.status == "failed"
    assert "ndsk_test_…" in stored
    assert SANDBOX_API_KEY not in stored
    assert SANDBOX_API_KEY not in caplog.text


@pytest.mark.parametrize("into", ["detail", "headers", "job"])
def test_admin_pages_never_show_an_echoed_key(sandbox, submitted, admin_client, into):
    sandbox.set_fault("echo_authorization", into=into, path="/v1/jobs/", count=1)
    services.poll_once(submitted)
    submitted.refresh_from_db()
    assert submitted.status == "failed" and submitted.error_message
    pages = [
        reverse("admin:neuraldraft_job_changelist"),
        reverse("admin:neuraldraft_job_change", args=[submitted.pk]),
        reverse("admin:neuraldraft_imagekey_changelist"),
        reverse("admin:neuraldraft_imagekey_change", args=[submitted.image_key_id]),
    ]
    for page in pages:
        response = admin_client.get(page)
        assert response.status_code == 200, page
        assert SANDBOX_API_KEY not in response.content.decode(), page
    assert "ndsk_test_…" in admin_client.get(pages[1]).content.decode()


def test_an_error_from_the_cdn_is_stored_and_logged_bounded_and_printable(sandbox, caplog):
    """A 404 whose detail and request id carry escape sequences, line breaks and 40 KB."""
    image_key = ImageKey.objects.create(key="hero.background", prompt="A quiet harbour at dawn")
    job = services.submit(services.request_generation(image_key))
    hostile = "\x1b[2J\x1b[31mFAKE LOG LINE\nWARNING forged\u202e" + "x" * 40_000
    request_id = hostile.replace("\n", " ")
    sandbox.set_fault("status", status=404, detail=hostile, request_id=request_id, path="/cdn/")
    sandbox.finish_job(job.remote_id)
    caplog.set_level(logging.DEBUG)
    services.poll_once(job)
    job.refresh_from_db()
    assert (job.status, job.error_code) == ("failed", "download_failed")
    assert "FAKE LOG LINE\\nWARNING forged" in job.error_message
    logged = [record.getMessage() for record in caplog.records]
    for text in [job.error_message, *logged]:
        assert not any(char in text for char in "\x1b\n\r\u202e"), text[:300]
    assert len(job.error_message) <= 2000
    assert max(map(len, logged)) <= 3000


@pytest.mark.parametrize("into", ["detail", "headers"])
def test_pull_from_a_server_that_echoes_the_key(sandbox, caplog, into):
    caplog.set_level(logging.DEBUG)
    sandbox.set_fault("echo_authorization", into=into, path="/v1/images/", count=1)
    with pytest.raises(AuthenticationError) as caught:
        services.pull("hero.background")
    assert SANDBOX_API_KEY in sandbox.requests[-1].headers["Authorization"]
    held = [str(caught.value), repr(vars(caught.value)), caplog.text]
    assert [text for text in held if SANDBOX_API_KEY in text] == []


def test_pull_of_an_image_whose_url_is_hostile_fetches_nothing(sandbox, client_for_sandbox):
    """``GET /images/{key}`` answers a URL that reads differently to two parsers."""
    hostile = f"http://127.0.0.1:1\\\\@127.0.0.1:{sandbox.port}/cdn/x.png"
    sandbox.set_fault("result_url", url=hostile, count=1)
    job = client_for_sandbox.create_image("A quiet harbour", key="hero.background")
    sandbox.finish_job(job.id)
    before = len(sandbox.requests)
    with pytest.raises(DownloadRefusedError):
        services.pull("hero.background")
    assert [r.path for r in sandbox.requests[before:]] == ["/v1/images/hero.background"]
    assert not ImageVersion.objects.exists()

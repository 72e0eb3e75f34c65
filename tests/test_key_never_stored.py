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

from django_neuraldraft import services
from django_neuraldraft.models import ImageKey, Job
from django_neuraldraft.testing import SANDBOX_API_KEY

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("neuraldraft_settings")]


def everything_stored(job: Job) -> str:
    job.refresh_from_db()
    fields = {field.attname: getattr(job, field.attname) for field in Job._meta.concrete_fields}
    return json.dumps(fields, default=str, ensure_ascii=False) + repr(job)


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

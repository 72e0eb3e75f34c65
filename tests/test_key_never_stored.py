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

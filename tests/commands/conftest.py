"""Fixtures of the command tests: images made end to end against the sandbox."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from django_neuraldraft import services
from tests.test_generation_broker import broker_down, closed_port  # noqa: F401 - fixtures


@pytest.fixture
def make_image(sandbox, neuraldraft_settings):
    """``make_image("hero", prompt="...")``: generate, finish at once, bind; the version."""

    def make(key: str, prompt: str = "A quiet harbour at dawn", **params):
        job = services.submit(services.generate(key, prompt=prompt, **params))
        sandbox.finish_job(job.remote_id)
        outcome = services.poll_once(job)
        assert outcome.version is not None, outcome.job.error_message
        return outcome.version

    return make


@pytest.fixture
def run():
    """``run("neuraldraft_status", "--json")``: the command's stdout as text."""

    def run_command(name: str, *args: str, **options) -> str:
        out = StringIO()
        call_command(name, *args, stdout=out, stderr=StringIO(), **options)
        return out.getvalue()

    return run_command

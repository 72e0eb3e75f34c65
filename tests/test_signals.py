"""The package's signals against the sandbox: sent once the change has committed, and a
receiver that raises fails nothing, keeps no other receiver from running, and is logged
on one printable line."""

from __future__ import annotations

import logging

import pytest

from django_neuraldraft import services
from django_neuraldraft.choices import JobStatus
from django_neuraldraft.models import ImageKey
from django_neuraldraft.signals import image_ready, job_failed

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("neuraldraft_settings"),
]

#: What a failing CDN might answer, quoted in the receiver's error.
HOSTILE = "the CDN purge API is down\x1b[2J\nWARNING forged line\u202e"
ESCAPED = "ConnectionError: the CDN purge API is down\\x1b[2J\\nWARNING forged line\\u202e"


class Purge:
    """A receiver that is a callable object, without a ``__qualname__`` of its own."""

    def __call__(self, sender, **kwargs):
        raise ConnectionError(HOSTILE)


@pytest.fixture
def receivers():
    """A site's receivers of both signals: one that raises (a CDN purge that times out),
    then one that records what it is sent."""
    received = []
    purge = Purge()

    def record(sender, signal, **kwargs):
        received.append((signal, kwargs))

    for signal in (image_ready, job_failed):
        signal.connect(purge)
        signal.connect(record)
    yield received
    for signal in (image_ready, job_failed):
        signal.disconnect(purge)
        signal.disconnect(record)


@pytest.fixture
def hero():
    return ImageKey.objects.create(key="hero.background", prompt="A quiet harbour at dawn")


def finished(image_key, sandbox):
    job = services.submit(services.request_generation(image_key))
    sandbox.finish_job(job.remote_id)
    return job


def assert_logged_once_and_escaped(caplog):
    logged = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert [record.getMessage().endswith(ESCAPED) for record in logged] == [True]
    for record in caplog.records:
        assert not any(char in record.getMessage() for char in "\x1b\n\r\u202e")
        assert record.exc_info is None


def test_a_failing_image_ready_receiver_leaves_the_ingest_done(
    hero, sandbox, empty_storage, receivers, caplog
):
    """The receiver's error no longer escapes the commit, where the ingest deleted the file."""
    job = finished(hero, sandbox)
    caplog.set_level(logging.DEBUG)
    outcome = services.poll_once(job)
    hero.refresh_from_db()
    assert (outcome.job.status, hero.current) == (JobStatus.COMPLETED, outcome.version)
    assert empty_storage.exists(outcome.version.file.name)
    assert receivers == [(image_ready, {"image_key": hero, "version": outcome.version})]
    assert_logged_once_and_escaped(caplog)


def test_a_failing_job_failed_receiver_leaves_the_poll_done(hero, sandbox, receivers, caplog):
    sandbox.set_fault("job_failure", count=1)
    job = finished(hero, sandbox)
    caplog.set_level(logging.DEBUG)
    outcome = services.poll_once(job)
    assert (outcome.job.status, outcome.next_poll_in) == (JobStatus.FAILED, None)
    assert receivers == [(job_failed, {"job": outcome.job})]
    assert_logged_once_and_escaped(caplog)

"""``generate()`` with the Celery broker down: a clear error, and the job saved for the sweep."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import timedelta

import pytest
from celery import Celery, current_app
from django.utils import timezone

import django_neuraldraft
from django_neuraldraft.choices import JobStatus
from django_neuraldraft.exceptions import BrokerUnavailableError
from django_neuraldraft.models import Job

pytestmark = pytest.mark.django_db


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port that refuses connections: bound, never listening, held by the test."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


@pytest.fixture(params=["redis", "amqp"])
def broker_down(request, closed_port: int) -> Iterator[Celery]:
    """Make this process publish to a broker URL at ``closed_port``, as a web process would."""
    previous = current_app._get_current_object()
    app = Celery("broker-down", set_as_current=False)
    app.conf.update(broker_url=f"{request.param}://127.0.0.1:{closed_port}//")
    app.set_current()
    yield app
    previous.set_current()
    app.close()


def test_generate_says_the_job_is_saved_and_will_be_sent_by_the_sweep(
    broker_down, django_capture_on_commit_callbacks, caplog
):
    with pytest.raises(BrokerUnavailableError) as excinfo:
        with django_capture_on_commit_callbacks(execute=True):
            django_neuraldraft.generate("hero.background", prompt="A harbour at dawn")

    job = Job.objects.get()
    assert job.status == JobStatus.PENDING
    assert job.remote_id is None
    assert excinfo.value.job_pk == job.pk
    message = str(excinfo.value)
    assert message.startswith(
        f"Job #{job.pk} is saved, but its submit_generation task could not be queued: the "
        "Celery broker is unreachable ("
    )
    assert message.endswith(
        "The sweep task (neuraldraft.sweep_stale_jobs) will send it once the broker is back."
    )
    assert [record.getMessage() for record in caplog.records] == [message]
    # What the sweep queues again once the broker is back.
    assert list(Job.objects.unsubmitted(before=timezone.now() + timedelta(seconds=1))) == [job]

"""Fixtures shared by the whole suite: one sandbox server per session, reset per test."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from functools import partial
from typing import Any, NamedTuple

import pytest
from celery.signals import before_task_publish
from django.core.cache import caches
from django.core.files.storage import Storage, storages

from django_neuraldraft.testing import SANDBOX_API_KEY, run_sandbox
from tests.celery_app import app as celery_app


@pytest.fixture(scope="session", autouse=True)
def _children_take_ctrl_c():
    """Child processes the tests interrupt get Python's SIGINT handler.

    A shell runs a backgrounded command with SIGINT ignored, and an ignored
    signal stays ignored across ``exec``, so the children would never see the
    tests' Ctrl-C. A handler, unlike SIG_IGN, is reset to the default in a child.
    """
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session", autouse=True)
def _celery_app_is_current():
    """Tasks publish through the suite's app (in-memory broker), never a default amqp one."""
    celery_app.set_current()


class PublishedTask(NamedTuple):
    name: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    eta: str | None


@pytest.fixture(scope="session")
def sandbox_server():
    with run_sandbox(job_seconds=0.2) as server:
        yield server


@pytest.fixture
def sandbox(sandbox_server) -> Iterator:
    """The session's sandbox, with jobs, images, faults and the request log cleared."""
    sandbox_server.reset()
    yield sandbox_server
    sandbox_server.reset()


@pytest.fixture
def api_key() -> str:
    return SANDBOX_API_KEY


@pytest.fixture
def neuraldraft_settings(sandbox, settings):
    """Point the app at the sandbox, with a fast poll schedule."""
    settings.NEURALDRAFT = {
        "API_KEY": SANDBOX_API_KEY,
        "BASE_URL": sandbox.base_url,
        "MAX_RETRIES": 2,
        "POLL_INITIAL": 0.05,
        "POLL_MAX": 0.2,
    }
    return settings.NEURALDRAFT


@pytest.fixture
def published() -> Iterator[list[PublishedTask]]:
    """Every Celery task message published during the test, in order."""
    messages: list[PublishedTask] = []

    def record(sender=None, headers=None, body=None, **kwargs):
        args, task_kwargs, _embed = body
        messages.append(PublishedTask(sender, tuple(args), task_kwargs, headers.get("eta")))

    before_task_publish.connect(record, weak=False)
    yield messages
    before_task_publish.disconnect(record)


@pytest.fixture
def cold_cache():
    """Start and end the test with an empty default cache, where the resolver keeps images."""
    caches["default"].clear()
    yield
    caches["default"].clear()


@pytest.fixture
def commit(django_capture_on_commit_callbacks):
    """``with commit():`` runs the block's on-commit callbacks at its end, as a commit would."""
    return partial(django_capture_on_commit_callbacks, execute=True)


@pytest.fixture
def empty_storage(settings) -> Storage:
    """A default storage of the test's own, empty, so a file found there is one the test made."""
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "django.core.files.storage.InMemoryStorage"},
    }
    return storages["default"]

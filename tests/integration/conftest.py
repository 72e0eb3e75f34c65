"""Fixtures for tests against real services: Celery workers on Redis, PostgreSQL, moto's S3.

A worker is a ``celery worker`` subprocess using ``tests.celery_app`` with
``tests.integration.worker_settings``; it shares the test's PostgreSQL
database, storage and sandbox through environment variables. Every wait has a
deadline and every worker is stopped at teardown, before pytest-django
flushes the database.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from celery import Celery, current_app
from django.conf import settings as django_settings
from django.db import connection

from django_neuraldraft import services
from django_neuraldraft.models import Job
from django_neuraldraft.testing import SANDBOX_API_KEY
from tests.celery_app import app as memory_app
from tests.helpers import require_service

T = TypeVar("T")

REPO_ROOT = Path(__file__).resolve().parents[2]
REDIS_URL = os.environ.get("NEURALDRAFT_TEST_REDIS_URL", "redis://127.0.0.1:6379/14")
WORKER_READY_TIMEOUT = 30.0
WORKER_STOP_TIMEOUT = 10.0


def wait_for(
    condition: Callable[[], T],
    *,
    timeout: float,
    describe: str,
    workers: tuple[Worker, ...] = (),
    interval: float = 0.05,
) -> T:
    """Return ``condition()`` once it is truthy; fail the test after ``timeout`` seconds.

    The failure message carries the tail of each worker's log, which is
    usually where the reason is.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            logs = "\n".join(worker.describe() for worker in workers)
            pytest.fail(f"Timed out after {timeout} s waiting for {describe}.\n{logs}")
        time.sleep(interval)


@dataclass
class Worker:
    """A ``celery worker`` subprocess in its own process group, logging to ``log_path``."""

    name: str
    process: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def describe(self, lines: int = 60) -> str:
        tail = "\n".join(self.log().splitlines()[-lines:])
        return f"--- worker {self.name} (exit code {self.process.poll()}) ---\n{tail}"

    def wait_ready(self, timeout: float = WORKER_READY_TIMEOUT) -> None:
        def ready() -> bool:
            if self.process.poll() is not None:
                pytest.fail(f"The worker exited during start-up.\n{self.describe()}")
            return " ready." in self.log()

        wait_for(ready, timeout=timeout, describe=f"worker {self.name} to start", workers=(self,))

    def kill(self) -> None:
        """SIGKILL the whole process group, pool children included: a crash, not a shutdown."""
        self._signal_group(signal.SIGKILL)
        self.process.wait(timeout=WORKER_STOP_TIMEOUT)

    def stop(self) -> None:
        """Warm shutdown with a deadline, then SIGKILL whatever is left of the group."""
        if self.process.poll() is None:
            self._signal_group(signal.SIGTERM)
            try:
                self.process.wait(timeout=WORKER_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                pass
        self._signal_group(signal.SIGKILL)
        self.process.wait(timeout=WORKER_STOP_TIMEOUT)

    def _signal_group(self, signum: int) -> None:
        try:
            os.killpg(self.process.pid, signum)
        except ProcessLookupError:
            pass


def redis_available(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=2).ping())
    except (redis.RedisError, OSError):
        return False


@pytest.fixture
def postgresql() -> None:
    """Skip (or fail under CI) unless the suite runs on PostgreSQL."""
    require_service(
        connection.vendor == "postgresql",
        "needs PostgreSQL: set NEURALDRAFT_TEST_DATABASE=postgresql with a server on "
        "PGHOST:PGPORT (default 127.0.0.1:5432)",
    )


@pytest.fixture
def redis_broker() -> Iterator[str]:
    """The URL of a dedicated Redis database, emptied before and after the test."""
    require_service(redis_available(REDIS_URL), f"needs Redis at {REDIS_URL}")
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_timeout=5)
    client.flushdb()
    yield REDIS_URL
    client.flushdb()
    client.close()


@pytest.fixture
def redis_celery(redis_broker: str) -> Iterator[Celery]:
    """Make task calls in this process publish to the Redis broker, as a web process would."""
    previous = current_app._get_current_object()
    app = Celery("tests-integration", set_as_current=False)
    app.conf.update(broker_url=redis_broker, broker_connection_retry_on_startup=False)
    app.set_current()
    yield app
    previous.set_current()
    app.close()


@contextmanager
def publishing_nowhere() -> Iterator[None]:
    """Send task messages to the in-memory broker, for a job the test drives inline."""
    previous = current_app._get_current_object()
    memory_app.set_current()
    try:
        yield
    finally:
        previous.set_current()


@pytest.fixture
def live_neuraldraft(sandbox, settings) -> dict[str, Any]:
    """``NEURALDRAFT`` pointing at the sandbox with a fast poll schedule, for us and workers."""
    settings.NEURALDRAFT = {
        "API_KEY": SANDBOX_API_KEY,
        "BASE_URL": sandbox.base_url,
        "MAX_RETRIES": 2,
        "POLL_INITIAL": 0.1,
        "POLL_MAX": 0.3,
    }
    return settings.NEURALDRAFT


@pytest.fixture
def media_root(settings, tmp_path: Path, live_neuraldraft) -> Path:
    """A ``FileSystemStorage`` in ``tmp_path`` as the default storage, shared with workers."""
    root = tmp_path / "media"
    root.mkdir()
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(root), "base_url": "/media/"},
        },
    }
    return root


def stored_files(root: Path) -> list[Path]:
    """Every original image under ``root``, sorted; what a crashed or racing ingest might leave.

    Renditions, in a folder named after their original's sha256, are the
    work of a later task (``make_renditions``) and are left out.
    """
    return sorted(
        path
        for path in root.rglob("*")
        if path.is_file() and not re.fullmatch(r"[0-9a-f]{64}", path.parent.name)
    )


@pytest.fixture
def completed_job(sandbox, live_neuraldraft) -> Callable[[str, str], Job]:
    """Return a factory of jobs completed at the sandbox and mirrored, but not ingested.

    The job is driven inline through ``services``; its submit message goes to
    the in-memory broker so that no worker picks it up as well.
    """

    def make(key: str, prompt: str) -> Job:
        with publishing_nowhere():
            job = services.request_generation(key, prompt=prompt)
        job = services.submit(job)
        sandbox.finish_job(job.remote_id)
        job = services.refresh_job(job)
        assert job.status == "completed", job.error_message
        return job

    return make


def _other_sessions(database: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            [database],
        )
        return cursor.fetchone()[0]


@pytest.fixture
def start_worker(
    transactional_db, postgresql, redis_broker: str, tmp_path: Path
) -> Iterator[Callable[..., Worker]]:
    """Return ``start(concurrency=2, pool="prefork")``, which starts a worker and waits for it.

    The worker gets the database, ``STORAGES["default"]`` and ``NEURALDRAFT``
    as they are when ``start`` is called. Workers still running at teardown
    are stopped, and teardown waits for their database sessions to end so
    that the flush and the final ``DROP DATABASE`` are not blocked.
    """
    workers: list[Worker] = []
    database = connection.settings_dict["NAME"]

    def start(*, concurrency: int = 2, pool: str = "prefork") -> Worker:
        name = f"w{len(workers) + 1}-{uuid.uuid4().hex[:6]}"
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.integration.worker_settings",
            "NEURALDRAFT_TEST_BROKER_URL": redis_broker,
            "NEURALDRAFT_TEST_DB_NAME": database,
            "NEURALDRAFT_TEST_STORAGE": json.dumps(django_settings.STORAGES["default"]),
            "NEURALDRAFT_TEST_NEURALDRAFT": json.dumps(django_settings.NEURALDRAFT),
        }
        log_path = tmp_path / f"{name}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "--app",
                    "tests.celery_app",
                    "worker",
                    "--loglevel=INFO",
                    f"--concurrency={concurrency}",
                    f"--pool={pool}",
                    f"--hostname={name}@%h",
                    "--without-gossip",
                    "--without-mingle",
                    "--without-heartbeat",
                ],
                cwd=REPO_ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        worker = Worker(name, process, log_path)
        workers.append(worker)
        worker.wait_ready()
        return worker

    yield start
    for worker in workers:
        worker.stop()
    if workers:
        wait_for(
            lambda: _other_sessions(database) == 0,
            timeout=10,
            describe="the workers' database sessions to close",
        )


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """moto's S3 in server mode on a free loopback port: the real HTTP S3 protocol."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError:
        require_service(False, "needs moto[server] for an S3-compatible server")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@dataclass
class S3Bucket:
    endpoint_url: str
    name: str
    client: Any


S3_CREDENTIALS = {"access_key": "testing", "secret_key": "testing", "region_name": "us-east-1"}


@pytest.fixture
def s3_bucket(moto_endpoint: str, settings, live_neuraldraft) -> S3Bucket:
    """A fresh bucket on moto, made the default storage through django-storages' S3 backend."""
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=moto_endpoint,
        aws_access_key_id=S3_CREDENTIALS["access_key"],
        aws_secret_access_key=S3_CREDENTIALS["secret_key"],
        region_name=S3_CREDENTIALS["region_name"],
    )
    name = f"neuraldraft-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=name)
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {"bucket_name": name, "endpoint_url": moto_endpoint, **S3_CREDENTIALS},
        },
    }
    return S3Bucket(moto_endpoint, name, client)

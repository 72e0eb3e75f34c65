"""What the benchmarks share: a throw-away Django project, the sandbox, a Celery worker, output.

A benchmark runs from a source checkout (``python bench/pipeline.py``) and
leaves nothing behind: database, media files and logs live in a temporary
directory, the sandbox runs in the benchmark's own process, and a worker is
a subprocess in its own process group, stopped at exit.

The configuration is one JSON-able dict. The benchmark process applies it
with :func:`configure`; a subprocess gets it in ``NEURALDRAFT_BENCH_CONFIG``
and applies it when it imports this module, before anything else. That is
how the worker (``celery --app _support worker``) and the download-memory
probe share the benchmark's database, storage and sandbox.

Results go to stdout as one JSON line (:func:`emit`); everything else goes
to stderr (:func:`note`).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import django
from celery import Celery
from celery.signals import worker_ready
from django.conf import settings

from django_neuraldraft.sandbox import SandboxServer
from django_neuraldraft.testing import SANDBOX_API_KEY, run_sandbox

CONFIG_ENV = "NEURALDRAFT_BENCH_CONFIG"
BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
#: A Redis database of its own: the benchmark empties it before and after.
REDIS_URL = os.environ.get("NEURALDRAFT_BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")
PG_HOST = os.environ.get("PGHOST", "127.0.0.1")
PG_PORT = int(os.environ.get("PGPORT", "5432"))
PG_USER = os.environ.get("PGUSER", "postgres")
WORKER_READY_TIMEOUT = 30.0
WORKER_STOP_TIMEOUT = 15.0

#: Publishes from the benchmark process and is the worker subprocess's app. Only a
#: worker reads ``imports``, after :func:`configure` has run ``django.setup()``.
app = Celery("bench", set_as_current=False)
app.conf.update(
    imports=("django_neuraldraft.tasks",),
    task_acks_late=True,
    worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=False,
)


def note(message: str) -> None:
    """Write a progress line to stderr; stdout is reserved for the result."""
    sys.stderr.write(f"[bench] {message}\n")
    sys.stderr.flush()


def emit(result: dict[str, Any]) -> None:
    """Write the result as the one JSON line on stdout."""
    sys.stdout.write(json.dumps(result, sort_keys=False) + "\n")
    sys.stdout.flush()


def _cache(config: dict[str, Any]) -> dict[str, Any]:
    """Per process by default; with ``shared_cache`` Redis, seen by every worker process."""
    if config.get("shared_cache"):
        return {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
    return {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}


def django_settings(config: dict[str, Any]) -> dict[str, Any]:
    """The Django settings of the benchmark project described by ``config``."""
    workdir = Path(config["workdir"])
    return {
        "SECRET_KEY": "bench-only-not-secret",
        "DEBUG": False,
        "USE_TZ": True,
        "TIME_ZONE": "UTC",
        "INSTALLED_APPS": [
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "django_neuraldraft",
        ],
        "DEFAULT_AUTO_FIELD": "django.db.models.BigAutoField",
        "DATABASES": {"default": _database(config)},
        "CACHES": {"default": _cache(config)},
        "STORAGES": {
            "default": {
                "BACKEND": "django.core.files.storage.FileSystemStorage",
                "OPTIONS": {"location": str(workdir / "media"), "base_url": "/media/"},
            },
        },
        "NEURALDRAFT": {
            "API_KEY": SANDBOX_API_KEY,
            "BASE_URL": config["base_url"],
            **config.get("neuraldraft", {}),
        },
    }


def _database(config: dict[str, Any]) -> dict[str, Any]:
    if config.get("database") == "postgresql":
        return {
            "ENGINE": "django.db.backends.postgresql",
            "HOST": PG_HOST,
            "PORT": PG_PORT,
            "USER": PG_USER,
            "NAME": config["database_name"],
        }
    # WAL lets readers run beside the one writer; BEGIN IMMEDIATE takes the write
    # lock up front, so a transaction waits (timeout) instead of failing with
    # "database is locked" when it upgrades from read to write.
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(Path(config["workdir"]) / "bench.sqlite3"),
        "OPTIONS": {
            "timeout": 30,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL",
        },
    }


@contextmanager
def postgresql_database() -> Iterator[str]:
    """Create a database of our own on the PostgreSQL server and drop it on exit."""
    import psycopg

    name = f"neuraldraft_bench_{os.getpid()}"
    with psycopg.connect(
        host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres", autocommit=True
    ) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield name
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def configure(config: dict[str, Any]) -> None:
    """Set up Django and the Celery app for ``config``; once per process."""
    settings.configure(**django_settings(config))
    django.setup()
    app.conf.broker_url = config["broker_url"]


def subprocess_env(config: dict[str, Any]) -> dict[str, str]:
    """The environment of a subprocess that must share the benchmark's configuration."""
    path = [str(BENCH_DIR), str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]
    env = {
        **os.environ,
        CONFIG_ENV: json.dumps(config),
        "PYTHONPATH": os.pathsep.join(filter(None, path)),
    }
    # Celery's Django fixup would take over set-up if it saw a settings module.
    env.pop("DJANGO_SETTINGS_MODULE", None)
    return env


def _ready_marker(config: dict[str, Any]) -> Path:
    return Path(config["workdir"]) / "worker.ready"


def flush_redis(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
    try:
        client.flushdb()
    finally:
        client.close()


@dataclass
class Worker:
    """A ``celery worker`` subprocess in its own process group, logging to ``log_path``."""

    process: subprocess.Popen
    log_path: Path
    ready_marker: Path

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def wait_ready(self, timeout: float = WORKER_READY_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while not self.ready_marker.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"The worker did not start:\n{self.log_tail()}")
            time.sleep(0.05)

    def stop(self) -> None:
        """Warm shutdown with a deadline, then SIGKILL whatever is left of the group."""
        self._signal_group(signal.SIGTERM)
        try:
            self.process.wait(timeout=WORKER_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            note(f"The worker ignored SIGTERM for {WORKER_STOP_TIMEOUT} s; killing it.")
        self._signal_group(signal.SIGKILL)
        self.process.wait(timeout=WORKER_STOP_TIMEOUT)

    def _signal_group(self, signum: int) -> None:
        try:
            os.killpg(self.process.pid, signum)
        except ProcessLookupError:
            pass


def start_worker(config: dict[str, Any], *, concurrency: int, loglevel: str = "WARNING") -> Worker:
    """Start a prefork worker on ``config``'s broker and wait until it consumes."""
    workdir = Path(config["workdir"])
    log_path = workdir / "worker.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "--app",
                "_support",
                "worker",
                f"--loglevel={loglevel}",
                f"--concurrency={concurrency}",
                "--pool=prefork",
                "--hostname=bench@%h",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ],
            cwd=BENCH_DIR,
            env=subprocess_env(config),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    worker = Worker(process, log_path, _ready_marker(config))
    try:
        worker.wait_ready()
    except BaseException:
        worker.stop()
        raise
    return worker


@dataclass
class Bench:
    """A running benchmark project: its configuration, sandbox and (optional) worker."""

    config: dict[str, Any]
    sandbox: SandboxServer
    worker: Worker | None


def _exit_on_sigterm() -> None:
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


@contextmanager
def bench_project(
    *,
    job_seconds: float,
    database: str = "sqlite",
    neuraldraft: dict[str, Any] | None = None,
    neuraldraft_from_sandbox: Callable[[SandboxServer], dict[str, Any]] | None = None,
    worker_concurrency: int | None = None,
    worker_loglevel: str = "WARNING",
    image_format: str = "png",
    shared_cache: bool = False,
) -> Iterator[Bench]:
    """Start the sandbox, configure and migrate a fresh project, start a worker if asked.

    ``database`` is ``"sqlite"`` (a file in the temporary directory) or
    ``"postgresql"`` (a database created for the run and dropped after it).
    ``neuraldraft_from_sandbox``, given the running sandbox, returns more
    ``NEURALDRAFT`` settings (e.g. a webhook secret it registered for).
    ``shared_cache`` puts the default cache in Redis (:data:`REDIS_URL`)
    instead of each process's memory.

    With ``worker_concurrency`` the broker is Redis (:data:`REDIS_URL`,
    emptied before and after); without, task messages go to the in-memory
    transport and nothing consumes them. Everything is torn down on exit,
    SIGTERM included.
    """
    from django.core.management import call_command

    _exit_on_sigterm()
    with ExitStack() as stack:
        workdir = stack.enter_context(tempfile.TemporaryDirectory(prefix="neuraldraft-bench-"))
        sandbox = stack.enter_context(
            run_sandbox(job_seconds=job_seconds, image_format=image_format)
        )
        config = {
            "workdir": workdir,
            "database": database,
            "base_url": sandbox.base_url,
            "broker_url": REDIS_URL if worker_concurrency else "memory://",
            "shared_cache": shared_cache,
            "neuraldraft": {
                **(neuraldraft or {}),
                **(neuraldraft_from_sandbox(sandbox) if neuraldraft_from_sandbox else {}),
            },
        }
        if database == "postgresql":
            config["database_name"] = stack.enter_context(postgresql_database())
        configure(config)
        app.set_current()
        stack.callback(_close_connections)
        call_command("migrate", verbosity=0, skip_checks=True)
        worker = None
        if worker_concurrency:
            flush_redis(REDIS_URL)
            stack.callback(flush_redis, REDIS_URL)
            worker = start_worker(config, concurrency=worker_concurrency, loglevel=worker_loglevel)
            stack.callback(worker.stop)
        yield Bench(config, sandbox, worker)


def _close_connections() -> None:
    from django.db import connections

    connections.close_all()


if CONFIG_ENV in os.environ and not settings.configured:
    _config = json.loads(os.environ[CONFIG_ENV])
    configure(_config)

    @worker_ready.connect
    def _mark_ready(**kwargs: Any) -> None:
        _ready_marker(_config).touch()

"""A live site with the admin, a real Celery worker and a slow sandbox, driven by Chromium.

Playwright drives Debian's ``/usr/bin/chromium``; it never downloads a browser
(``playwright install`` is not used anywhere). The live server runs in this
process, the worker in another, and both share the PostgreSQL test database,
the media folder and the sandbox.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery import _state as celery_state
from django.db import connection

from django_neuraldraft.testing import run_sandbox
from tests.helpers import require_service
from tests.integration.conftest import (  # noqa: F401 (fixtures)
    live_neuraldraft,
    media_root,
    postgresql,
    redis_broker,
    redis_celery,
    start_worker,
)

CHROMIUM = Path("/usr/bin/chromium")
REPO_ROOT = Path(__file__).resolve().parents[2]
#: Git-ignored; the screenshots of the last run, docs/admin.rst shows one of them.
ARTIFACTS = REPO_ROOT / "test-artifacts" / "browser"
#: Long enough for the page to see a few progress steps before the image lands.
JOB_SECONDS = 8.0

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def chromium_path() -> Path:
    """Debian's Chromium; checked before any server or worker is started for nothing."""
    require_service(
        CHROMIUM.exists(), f"needs Chromium at {CHROMIUM}: apt-get install -y chromium"
    )
    try:
        import playwright  # noqa: F401
    except ImportError:
        require_service(False, "needs the playwright package (dependency group 'browser')")
    return CHROMIUM


@pytest.fixture
def chromium(site, chromium_path: Path, monkeypatch) -> Iterator:
    """A headless Chromium driven through Playwright, for one test.

    Set up after the site and closed before it: the browser's keep-alive
    connections hold the live server's request threads, and with them their
    database sessions, which must be gone before the test database is flushed.
    """
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the database
    # calls of the test are plain synchronous code all the same.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(chromium_path), args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@pytest.fixture
def artifacts(request) -> Iterator[Path]:
    """The screenshot folder, emptied first and named in the test output at the end."""
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    yield ARTIFACTS
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"\n[browser] screenshots saved in {ARTIFACTS}")


@pytest.fixture
def slow_sandbox() -> Iterator:
    with run_sandbox(job_seconds=JOB_SECONDS) as server:
        yield server


@pytest.fixture
def site(
    chromium_path,
    slow_sandbox,
    media_root,  # noqa: F811
    redis_celery,  # noqa: F811
    start_worker,  # noqa: F811
    live_server,
    settings,
    django_user_model,
):
    """The live server's URL, with a worker following jobs and an ``editor`` superuser.

    Requests run in the live server's threads, which see Celery's default app,
    not this thread's current one: the Redis app is made the default too.
    """
    settings.ROOT_URLCONF = "tests.browser.urls"
    settings.MEDIA_ROOT = str(media_root)
    settings.NEURALDRAFT = {**settings.NEURALDRAFT, "BASE_URL": slow_sandbox.base_url}
    previous_default = celery_state.default_app
    redis_celery.set_default()
    django_user_model.objects.create_superuser("editor", "editor@example.com", "secret")
    worker = start_worker(concurrency=1, pool="solo")
    yield live_server.url, worker
    celery_state.set_default_app(previous_default)
    worker.stop()
    _end_idle_request_sessions()


def _end_idle_request_sessions() -> None:
    """End the database sessions the live server's request threads still hold.

    A request thread that served a page keeps its session open while it waits
    on an idle keep-alive socket, even after the browser is gone; the test
    database cannot be flushed or dropped around it. The worker is stopped
    first, so every other session left is one of those.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )

"""``make demo``: the example site, a Celery worker and the Neural Draft sandbox, all local.

Starts the sandbox, migrates a fresh SQLite database, asks for the images of
the example page, waits while a real worker follows the jobs and binds the
images, renders the page once, then serves the site until Ctrl-C. With
``--once`` it stops after rendering, which is how the tests run it.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import django

from django_neuraldraft.testing import run_sandbox

PROJECT_DIR = Path(__file__).resolve().parent
VAR_DIR = Path(os.environ.get("NEURALDRAFT_DEMO_VAR", PROJECT_DIR / "var"))

#: The images of the example page: key, prompt, aspect ratio, alt text.
DEMO_IMAGES = [
    ("hero.background", "A yoga studio by the harbour at dawn", "16:9", "The studio at dawn"),
    ("classes.morning", "Sun salutation on a wooden deck", "4:3", "A morning class"),
    ("classes.evening", "Candle-lit stretching class", "4:3", "An evening class"),
    ("team.portrait", "Three smiling yoga teachers", "1:1", "Our teachers"),
    ("banner.retreat", "Tents among pines above the sea", "3:2", "The summer retreat"),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--once", action="store_true", help="stop after rendering the page")
    parser.add_argument("--port", type=int, default=8000, help="port of the site (8000)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for images")
    options = parser.parse_args(argv)

    shutil.rmtree(VAR_DIR, ignore_errors=True)
    for folder in ("media", "cache", "broker/queue", "broker/processed", "broker/control"):
        (VAR_DIR / folder).mkdir(parents=True)

    with run_sandbox(job_seconds=3.0) as sandbox:
        os.environ["NEURALDRAFT_DEMO_BASE_URL"] = sandbox.base_url
        os.environ["NEURALDRAFT_DEMO_VAR"] = str(VAR_DIR)
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_project.settings")
        django.setup()
        say(f"Neural Draft sandbox on {sandbox.base_url}")
        prepare_database()
        with running(celery_worker_command()) as worker:
            request_images()
            wait_until_bound(options.timeout, worker)
            page = render_home_page()
            say(f"Rendered the home page with {page} images from local storage.")
            if options.once:
                return 0
            serve(options.port)
    return 0


def say(text: str) -> None:
    print(f"[demo] {text}", flush=True)


def prepare_database() -> None:
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    get_user_model().objects.create_superuser("admin", "admin@example.com", "admin")
    say("Database ready; the admin login is admin / admin.")


def celery_worker_command() -> list[str]:
    return [
        sys.executable, "-m", "celery", "-A", "example_project", "--quiet", "worker",
        "--beat", "--schedule", str(VAR_DIR / "celerybeat-schedule"),
        "--concurrency", "2", "--loglevel", "WARNING",
    ]  # fmt: skip


@contextmanager
def running(command: list[str]) -> Iterator[subprocess.Popen]:
    """Run ``command`` beside the demo and stop it, whatever happens."""
    process = subprocess.Popen(command, cwd=PROJECT_DIR.parent)
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


def request_images() -> None:
    from django.db import transaction

    import django_neuraldraft

    for key, prompt, aspect_ratio, alt_text in DEMO_IMAGES:
        with transaction.atomic():
            job = django_neuraldraft.generate(
                key, prompt=prompt, aspect_ratio=aspect_ratio, alt_text=alt_text
            )
        say(f"Asked for {key!r}: local job #{job.pk}, {job.credits} credits.")


def wait_until_bound(timeout: float, worker: subprocess.Popen) -> None:
    from django_neuraldraft.models import ImageKey, Job

    deadline = time.monotonic() + timeout
    reported = None
    while True:
        waiting = ImageKey.objects.filter(current__isnull=True).count()
        states = sorted(Job.objects.values_list("status", flat=True))
        if states != reported:
            say(f"Jobs: {', '.join(states)}")
            reported = states
        if not waiting:
            return
        failed = Job.objects.filter(status="failed").first()
        if failed is not None:
            raise SystemExit(f"Job {failed} failed: {failed.error_code} {failed.error_message}")
        if worker.poll() is not None:
            raise SystemExit("The Celery worker stopped; see its output above.")
        if time.monotonic() > deadline:
            raise SystemExit(f"{waiting} images still unbound after {timeout:.0f} s.")
        time.sleep(0.5)


def render_home_page() -> int:
    from django.test import Client

    response = Client().get("/")
    html = response.content.decode()
    output = VAR_DIR / "home.html"
    output.write_text(html)
    say(f"Home page saved to {output}")
    return len(re.findall(r'<img [^>]*src="/media/', html))


def serve(port: int) -> None:
    say(f"Open http://127.0.0.1:{port}/ and http://127.0.0.1:{port}/admin/ (Ctrl-C stops)")
    manage = [sys.executable, str(PROJECT_DIR / "manage.py")]
    try:
        subprocess.run([*manage, "runserver", f"127.0.0.1:{port}", "--noreload"], check=False)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())

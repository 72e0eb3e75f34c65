"""``make demo``: the example site, a Celery worker and the Neural Draft sandbox, all local.

Starts the sandbox, migrates a fresh SQLite database, asks for the images of
the example page, waits while a real worker follows the jobs and binds the
images, renders the page once, then serves the site until Ctrl-C (or SIGTERM),
which stops the worker and the sandbox too. ``--port 0`` serves on a free port
and prints it; ``--once`` stops after rendering. Any failure exits non-zero.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
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
    parser.add_argument(
        "--port", type=int, default=8000, help="port of the site; 0 picks a free one (8000)"
    )
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for images")
    options = parser.parse_args(argv)
    stop_on_signals()
    try:
        run_demo(options)
    except KeyboardInterrupt:
        say("Stopped.")
    return 0


def run_demo(options: argparse.Namespace) -> None:
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
        with running(celery_worker_command(), "The Celery worker") as worker:
            request_images()
            deadline = time.monotonic() + options.timeout
            wait_until_bound(deadline, options.timeout, worker)
            wait_for_renditions(deadline, options.timeout, worker)
            page = render_home_page()
            say(f"Rendered the home page with {page} images from local storage.")
            if not options.once:
                serve(options.port)


def stop_on_signals() -> None:
    """Make SIGTERM and SIGHUP stop the demo the way Ctrl-C does: worker and sandbox too.

    Python's default SIGTERM ends the process without unwinding, which left the
    Celery worker running. The first signal starts the orderly stop; further
    ones are ignored so that they cannot interrupt it half-way.
    """
    signals = [signal.SIGINT, signal.SIGTERM]
    if hasattr(signal, "SIGHUP"):
        signals.append(signal.SIGHUP)

    def stop(received: int, frame: object) -> None:
        for signum in signals:
            signal.signal(signum, signal.SIG_IGN)
        raise KeyboardInterrupt

    for signum in signals:
        signal.signal(signum, stop)


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
        sys.executable, "-m", "celery", "-A", "example_project.celery_app", "--quiet", "worker",
        "--beat", "--schedule", str(VAR_DIR / "celerybeat-schedule"),
        "--concurrency", "2", "--loglevel", "WARNING",
    ]  # fmt: skip


@contextmanager
def running(command: list[str], name: str) -> Iterator[subprocess.Popen]:
    """Run ``command`` beside the demo, in a process group of its own, and stop that group.

    Its own group, so that Ctrl-C reaches the demo alone and the demo stops
    the command in order (a warm shutdown first), then kills whatever the
    command left in the group (Celery's pool and beat processes).
    """
    process = subprocess.Popen(command, cwd=PROJECT_DIR.parent, start_new_session=True)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                say(f"{name} did not stop within 15 s; killing it.")
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def request_images() -> None:
    from django.db import transaction

    import django_neuraldraft

    for key, prompt, aspect_ratio, alt_text in DEMO_IMAGES:
        with transaction.atomic():
            job = django_neuraldraft.generate(
                key, prompt=prompt, aspect_ratio=aspect_ratio, alt_text=alt_text
            )
        say(f"Asked for {key!r}: local job #{job.pk}, {job.credits} credits.")


def wait_until_bound(deadline: float, timeout: float, worker: subprocess.Popen) -> None:
    from django_neuraldraft.models import ImageKey, Job

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


def wait_for_renditions(deadline: float, timeout: float, worker: subprocess.Popen) -> None:
    """Wait until the worker has recorded every rendition of every image, so that it is idle.

    The worker makes them after each image is bound, in steps, largest first
    (about a second of CPU an image), so a version records some before it has
    them all. Serving before they are done left it busy and the page without
    its smaller widths, and Ctrl-C soon after then waited out the whole warm
    shutdown and killed it half-way.
    """
    from django_neuraldraft import renditions
    from django_neuraldraft.models import ImageVersion

    def missing() -> int:
        return sum(1 for version in ImageVersion.objects.all() if renditions.todo(version))

    count = missing()
    if count:
        say(f"Making the renditions of {count} images (smaller widths, modern formats)...")
    while count:
        if worker.poll() is not None:
            raise SystemExit("The Celery worker stopped; see its output above.")
        if time.monotonic() > deadline:
            raise SystemExit(f"{count} images still without renditions after {timeout:.0f} s.")
        time.sleep(0.5)
        count = missing()


def render_home_page() -> int:
    from django.test import Client

    response = Client().get("/")
    html = response.content.decode()
    output = VAR_DIR / "home.html"
    output.write_text(html)
    say(f"Home page saved to {output}")
    return len(re.findall(r'<img [^>]*src="/media/', html))


def serve(port: int) -> None:
    """Serve the site from this process, with static files, until interrupted."""
    from django.contrib.staticfiles.handlers import StaticFilesHandler
    from django.core.handlers.wsgi import WSGIHandler
    from django.core.servers.basehttp import run

    def announce(bound_port: int) -> None:
        site = f"http://127.0.0.1:{bound_port}/"
        say(f"Open {site} and {site}admin/ (Ctrl-C stops)")

    try:
        run("127.0.0.1", port, StaticFilesHandler(WSGIHandler()), threading=True, on_bind=announce)
    except OSError as err:
        raise SystemExit(f"Cannot serve on 127.0.0.1:{port}: {err}. Try --port 0.") from err


if __name__ == "__main__":
    sys.exit(main())

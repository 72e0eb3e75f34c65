"""``make demo`` keeps working as the README runs it: served over HTTP, stopped by Ctrl-C.

One run of the demo, on a free port: the example site, a real Celery worker
and the sandbox, end to end; then SIGINT to the demo's process group, as a
terminal sends it, must stop everything the demo started, without a traceback,
the worker by its own warm shutdown rather than the demo's kill.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")


def wait_for(condition: Callable[[], T], *, timeout: float, describe: Callable[[], str]) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(describe())
        time.sleep(0.2)


def processes_with(marker: str) -> list[int]:
    """Pids of the live processes whose environment holds ``marker``: the demo's descendants."""
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if marker.encode() in environ.read_bytes().split(b"\0"):
                found.append(int(environ.parent.name))
        except OSError:
            continue
    return found


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs Linux's /proc")
def test_demo_serves_images_over_http_and_stops_cleanly_on_ctrl_c(tmp_path):
    var = tmp_path / "var"
    marker = f"NEURALDRAFT_DEMO_VAR={var}"
    environment = {**os.environ, "NEURALDRAFT_DEMO_VAR": str(var)}
    environment.pop("DJANGO_SETTINGS_MODULE", None)
    out_path, err_path = tmp_path / "stdout", tmp_path / "stderr"

    def output() -> str:
        return f"--- stdout\n{out_path.read_text()}\n--- stderr\n{err_path.read_text()}"

    with out_path.open("w") as out, err_path.open("w") as err:
        demo = subprocess.Popen(
            [sys.executable, "-m", "example_project.demo", "--port", "0", "--timeout", "60"],
            cwd=ROOT,
            env=environment,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
    try:
        site = wait_for(
            lambda: (
                re.search(r"Open (http://127\.0\.0\.1:\d+/) ", out_path.read_text())
                or demo.poll() is not None
            ),
            timeout=120,
            describe=lambda: f"The demo never started serving.\n{output()}",
        )
        assert demo.poll() is None, f"The demo exited with {demo.returncode}.\n{output()}"
        site = site.group(1)
        assert "Rendered the home page with 5 images from local storage." in out_path.read_text()
        assert "the admin login is admin / admin" in out_path.read_text()

        page = requests.get(site, timeout=30)
        assert page.status_code == 200
        pictures = re.findall(r"<picture>.*?</picture>", page.text, re.DOTALL)
        # Renditions are made largest first: the smallest width comes last.
        assert [" 320w" in picture for picture in pictures] == [True] * 5, (
            "The demo served before every image had all its renditions.\n" + page.text
        )
        images = re.findall(r'<img [^>]*src="(/media/neuraldraft/[^"]+\.jpg)"', page.text)
        assert len(images) == 5, page.text
        assert '<img src="/media/neuraldraft/banner.retreat/' in page.text
        assert '<a href="/admin/neuraldraft/imagekey/">' in page.text
        image = requests.get(site.rstrip("/") + images[0], timeout=30)
        assert image.status_code == 200
        assert image.headers["Content-Type"] == "image/jpeg"
        assert image.content.startswith(b"\xff\xd8\xff")

        os.killpg(demo.pid, signal.SIGINT)
        assert demo.wait(timeout=60) == 0, output()
        assert "Traceback" not in output()
        assert "[demo] Stopped." in out_path.read_text()
        assert "did not stop within" not in out_path.read_text(), output()
        wait_for(
            lambda: not processes_with(marker),
            timeout=15,
            describe=lambda: f"The demo left {processes_with(marker)} running.\n{output()}",
        )
    finally:
        for pid in {demo.pid, *processes_with(marker)}:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        demo.wait(timeout=10)


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs Linux's /proc")
def test_a_failed_demo_exits_non_zero_and_leaves_nothing_running(tmp_path):
    var = tmp_path / "var"
    environment = {**os.environ, "NEURALDRAFT_DEMO_VAR": str(var)}
    environment.pop("DJANGO_SETTINGS_MODULE", None)
    result = subprocess.run(
        [sys.executable, "-m", "example_project.demo", "--port", "0", "--timeout", "0"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.endswith("5 images still unbound after 0 s.\n")
    assert "Traceback" not in result.stderr
    marker = f"NEURALDRAFT_DEMO_VAR={var}"
    wait_for(
        lambda: not processes_with(marker),
        timeout=15,
        describe=lambda: f"The demo left {processes_with(marker)} running.",
    )

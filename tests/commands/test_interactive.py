"""Commands in a child process, as a shell runs them: Ctrl-C while waiting, the sandbox server."""

from __future__ import annotations

import os
import queue
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import requests

from django_neuraldraft.testing import SANDBOX_API_KEY, run_sandbox

ROOT = Path(__file__).resolve().parents[2]

#: Seconds a child process gets to print what the test waits for; a limit, not a timing.
PATIENCE = 60


class Child:
    """A ``manage.py`` command in a child process, its output read line by line in a thread."""

    def __init__(self, *args: str, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "django", *args],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        for line in self.process.stdout:
            self.lines.put(line)

    def wait_for(self, text: str) -> str:
        while True:
            try:
                line = self.lines.get(timeout=PATIENCE)
            except queue.Empty:
                self.process.kill()
                pytest.fail(f"No line with {text!r} in {PATIENCE} s; got {self.seen}")
            self.seen.append(line)
            if text in line:
                return line

    def interrupt(self) -> tuple[int, str]:
        self.process.send_signal(signal.SIGINT)
        try:
            returncode = self.process.wait(timeout=PATIENCE)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise
        return returncode, self.process.stderr.read()


def test_sandbox_serves_until_ctrl_c_and_prints_the_settings():
    child = Child(
        "neuraldraft_sandbox",
        "--port",
        "0",
        "--job-seconds",
        "1",
        "--fault",
        "latency:seconds=0.01",
        env={"DJANGO_SETTINGS_MODULE": "tests.settings"},
    )
    child.wait_for("API_KEY")
    base_url = child.wait_for('"BASE_URL"').split('"')[3]
    child.wait_for("Ctrl-C")

    response = requests.get(
        f"{base_url}/jobs/job_missing",
        headers={"Authorization": f"Bearer {SANDBOX_API_KEY}"},
        timeout=10,
    )
    returncode, _stderr = child.interrupt()

    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
    assert any("Fault:" in line and "latency" in line for line in child.seen)
    assert returncode == 0


@pytest.fixture
def database(tmp_path):
    path = tmp_path / "db.sqlite3"
    subprocess.run(
        [sys.executable, "-m", "django", "migrate", "-v", "0"],
        cwd=ROOT,
        env={**os.environ, **child_env(path, "http://127.0.0.1:9/v1")},
        check=True,
        timeout=PATIENCE * 2,
    )
    return path


def child_env(database: Path, base_url: str) -> dict[str, str]:
    return {
        "DJANGO_SETTINGS_MODULE": "tests.commands.subprocess_settings",
        "NEURALDRAFT_COMMAND_DB": str(database),
        "NEURALDRAFT_COMMAND_BASE_URL": base_url,
        # Task messages stay in the child: no broker is touched, and no worker runs.
        "CELERY_BROKER_URL": "memory://",
    }


def test_ctrl_c_stops_waiting_and_the_job_goes_on(database):
    with run_sandbox(job_seconds=20) as sandbox:
        child = Child(
            "neuraldraft_generate",
            "hero.background",
            "--prompt",
            "A harbour",
            "--wait",
            env=child_env(database, sandbox.base_url),
        )
        child.wait_for("hero.background: processing")

        returncode, stderr = child.interrupt()

        (remote_id,) = sandbox.jobs
        assert sandbox.jobs[remote_id]["status"] in ("pending", "processing")
    assert returncode == 130
    assert f"Stopped waiting. Job {remote_id} goes on" in stderr
    with sqlite3.connect(database) as connection:
        rows = connection.execute("SELECT remote_id, status FROM neuraldraft_job").fetchall()
    assert rows in ([(remote_id, "pending")], [(remote_id, "processing")])


def test_ctrl_c_before_the_job_is_sent_says_it_is_saved(database):
    with run_sandbox() as sandbox:
        sandbox.set_fault("status", status=503, method="POST", path="/v1/images")
        child = Child(
            "neuraldraft_generate",
            "hero.background",
            "--prompt",
            "A harbour",
            "--wait",
            env=child_env(database, sandbox.base_url),
        )
        child.wait_for("hero.background: pending")

        returncode, stderr = child.interrupt()

        assert sandbox.jobs == {}
    assert returncode == 130
    assert "Stopped waiting. Job #1 is saved but not sent yet" in stderr

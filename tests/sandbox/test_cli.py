"""``python -m django_neuraldraft.sandbox``: starts, serves with faults, stops on SIGTERM."""

from __future__ import annotations

import re
import subprocess
import sys

import requests

from django_neuraldraft.sandbox import SANDBOX_API_KEY

COMMAND = [sys.executable, "-m", "django_neuraldraft.sandbox"]


def start(*args: str) -> tuple[subprocess.Popen, list[str]]:
    process = subprocess.Popen(
        [*COMMAND, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    lines = []
    while not lines or not lines[-1].startswith("Press Ctrl-C"):
        line = process.stdout.readline()
        assert line, "the sandbox exited before it was ready"
        lines.append(line.strip())
    return process, lines


def run_cli(*args: str) -> subprocess.CompletedProcess:
    """Run the command line to its end: for options it refuses before serving."""
    return subprocess.run(
        [*COMMAND, *args], capture_output=True, text=True, timeout=30, check=False
    )


class TestCommandLine:
    def test_serves_with_faults_until_terminated(self):
        process, lines = start(
            "--port",
            "0",
            "--job-seconds",
            "0",
            "--fault",
            "status:status=503,count=1,path=/v1/projects",
        )
        try:
            base_url = re.fullmatch(r"Neural Draft sandbox running at (http://\S+/v1)", lines[0])[
                1
            ]
            assert lines[1] == f"API key: {SANDBOX_API_KEY}"
            assert "'kind': 'status'" in lines[2]
            headers = {"Authorization": f"Bearer {SANDBOX_API_KEY}"}
            first = requests.get(base_url + "/projects/me", headers=headers, timeout=5)
            second = requests.get(base_url + "/projects/me", headers=headers, timeout=5)
            assert (first.status_code, second.status_code) == (503, 200)
            job = requests.post(
                base_url + "/images", json={"prompt": "x"}, headers=headers, timeout=5
            )
            status = requests.get(
                base_url + f"/jobs/{job.json()['id']}", headers=headers, timeout=5
            )
            assert status.json()["status"] == "completed"
        finally:
            process.terminate()
            out, _ = process.communicate(timeout=10)
        assert process.returncode == 0
        assert "Stopping." in out

    def test_bad_fault_is_a_usage_error(self):
        result = run_cli("--fault", "explode")
        assert result.returncode == 2
        assert "Unknown fault kind" in result.stderr

    def test_bad_option_is_a_usage_error(self):
        result = run_cli("--job-seconds", "-1")
        assert result.returncode == 2
        assert "job_seconds" in result.stderr

    def test_a_port_out_of_range_is_a_usage_error(self):
        result = run_cli("--port", "99999")
        assert result.returncode == 2
        assert "'99999' is not a port (0 to 65535)" in result.stderr

    def test_a_port_in_use_says_to_pick_another(self, sandbox_server):
        result = run_cli("--port", str(sandbox_server.port))
        assert result.returncode == 1
        assert result.stderr.strip() == (
            f"Cannot listen on 127.0.0.1:{sandbox_server.port} (Address already in use); "
            "pick another --port."
        )

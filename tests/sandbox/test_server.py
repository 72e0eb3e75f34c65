"""The server object: lifecycle, addresses, the request log helpers, concurrency, plumbing."""

from __future__ import annotations

import logging
import re
import socket
import subprocess
import sys
import threading
import time

import pytest
import requests

from django_neuraldraft.sandbox import SandboxServer
from django_neuraldraft.testing import run_sandbox
from tests.sandbox.support import Api, iter_sse


class TestLifecycle:
    def test_addresses(self, sandbox):
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", sandbox.origin)
        assert sandbox.base_url == sandbox.origin + "/v1"
        assert sandbox.port == int(sandbox.origin.rsplit(":", 1)[1])

    def test_context_manager_starts_and_stops(self):
        with SandboxServer(job_seconds=0) as server:
            url = server.base_url
            assert Api(server).get("/projects/me").status_code == 200
        with pytest.raises(requests.ConnectionError):
            requests.get(url + "/projects/me", timeout=2)

    def test_a_server_starts_once(self):
        server = SandboxServer().start()
        try:
            with pytest.raises(RuntimeError):
                server.start()
        finally:
            server.stop()
        with pytest.raises(RuntimeError):
            server.start()
        server.stop()

    def test_port_needs_a_running_server(self):
        server = SandboxServer()
        with pytest.raises(RuntimeError):
            server.base_url  # noqa: B018 (the property is what raises)

    def test_stop_closes_keep_alive_connections_and_joins(self):
        server = SandboxServer().start()
        session = Api(server)
        assert session.get("/projects/me").status_code == 200
        started = time.perf_counter()
        server.stop()
        assert time.perf_counter() - started < 2
        names = {thread.name for thread in threading.enumerate()}
        assert (
            not {
                f"neuraldraft-sandbox-http-{server.port}",
                f"neuraldraft-sandbox-webhooks-{server.port}",
            }
            & names
        )
        with pytest.raises(requests.ConnectionError):
            session.get("/projects/me")

    def test_stop_ends_open_streams(self):
        server = SandboxServer(job_seconds=60).start()
        api = Api(server)
        job = api.generate()
        with api.get(f"/jobs/{job['id']}/stream", stream=True) as response:
            items = iter_sse(response)
            next(items)
            server.stop()
            try:
                rest = list(items)
            except requests.RequestException:
                rest = []
        assert rest == []

    @pytest.mark.parametrize(
        "options",
        [
            {"job_seconds": -1},
            {"image_long_edge": 8},
            {"credits": -5},
            {"sse_heartbeat": 0},
            {"webhook_timeout": 0},
            {"webhook_retry_scale": -1},
        ],
    )
    def test_bad_options(self, options):
        with pytest.raises(ValueError):
            SandboxServer(**options)

    def test_run_sandbox_uses_a_free_port_and_stops(self):
        with run_sandbox(job_seconds=0) as first, run_sandbox() as second:
            assert first.port != second.port
            assert Api(first).get("/projects/me").ok
        with pytest.raises(requests.ConnectionError):
            requests.get(first.base_url + "/projects/me", timeout=2)

    def test_testing_module_does_not_import_django(self):
        code = (
            "import sys, django_neuraldraft.testing, django_neuraldraft.sandbox.__main__; "
            "sys.exit('django' in sys.modules)"
        )
        assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


class TestRequestLog:
    def test_requests_are_recorded(self, api):
        api.post("/images", json={"prompt": "x"}, headers={"X-Trace": "abc"}, params={"a": "1"})
        (entry,) = api.server.requests
        assert entry.method == "POST"
        assert entry.path == "/v1/images"
        assert entry.query == {"a": "1"}
        assert entry.headers["x-trace"] == "abc"
        assert entry.headers["X-TRACE"] == "abc"
        assert "x-trace" in entry.headers
        assert entry.json == {"prompt": "x"}
        assert entry.body == b'{"prompt": "x"}'
        assert entry.status == 202
        assert re.fullmatch(r"req_[0-9A-Za-z]{12}", entry.request_id)

    def test_non_json_body_parses_to_none(self, api):
        api.post("/images", data=b"\xff", headers={"Content-Type": "application/json"})
        assert api.server.last_request().json is None

    def test_assert_called(self, api):
        api.get("/projects/me")
        api.get("/projects/me", params={"x": "1"})
        assert len(api.server.assert_called("get", "/v1/projects/me")) == 2
        api.server.assert_called("GET", "/v1/projects/me", times=2)
        with pytest.raises(AssertionError, match=r"GET /v1/projects/me -> 200"):
            api.server.assert_called("GET", "/v1/projects/me", times=1)
        with pytest.raises(AssertionError, match="saw it 0 time"):
            api.server.assert_called("POST", "/v1/images")

    def test_last_request(self, api):
        api.get("/projects/me")
        api.get("/jobs/job_x")
        assert api.server.last_request().path == "/v1/jobs/job_x"
        assert api.server.last_request("GET", "/v1/projects/me").status == 200
        with pytest.raises(AssertionError, match="No request matched POST"):
            api.server.last_request("POST")

    def test_reset_clears_the_log(self, api):
        api.get("/projects/me")
        api.server.reset()
        assert api.server.requests == []


class TestPlumbing:
    def test_many_concurrent_keep_alive_clients(self, make_api):
        api = make_api(job_seconds=0, rate_limit=None)
        job = api.generate()
        statuses: list[int] = []
        lock = threading.Lock()

        def worker() -> None:
            client = Api(api.server)
            mine = [client.get(f"/jobs/{job['id']}").status_code for _ in range(25)]
            with lock:
                statuses.extend(mine)
            client.close()

        threads = [threading.Thread(target=worker) for _ in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert statuses == [200] * 400

    @pytest.mark.parametrize("method", ["OPTIONS", "TRACE"])
    def test_methods_the_server_does_not_know_are_405_problems(self, api, method):
        response = api.request(method, "/images")
        assert response.status_code == 405
        assert response.headers["Content-Type"] == "application/problem+json"
        assert response.json()["instance"] == response.headers["X-Request-Id"]

    def test_a_malformed_request_line_is_a_400_problem(self, sandbox):
        with socket.create_connection(("127.0.0.1", sandbox.port), timeout=5) as connection:
            connection.sendall(b"GET /v1/jobs two-targets HTTP/1.1\r\n\r\n")
            answer = connection.makefile("rb").read()
        assert answer.startswith(b"HTTP/1.1 400 ")
        assert b"X-Request-Id: req_" in answer
        assert b'"code":"bad_request"' in answer

    def test_chunked_request_bodies(self, api):
        response = api.post(
            "/images",
            data=iter([b'{"prompt": ', b'"chunked"}']),
            headers={"Content-Type": "application/json"},
        )
        assert response.status_code == 202
        assert api.server.last_request().json == {"prompt": "chunked"}

    def test_access_log_goes_to_the_logger_not_stderr(self, api, caplog, capfd):
        with caplog.at_level(logging.DEBUG, logger="django_neuraldraft.sandbox"):
            api.get("/projects/me")
        assert any('"GET /v1/projects/me HTTP/1.1" 200' in r.getMessage() for r in caplog.records)
        assert capfd.readouterr().err == ""

    def test_unexpected_errors_are_500_problems(self, api, monkeypatch, caplog):
        def explode(*args):
            raise RuntimeError("boom")

        monkeypatch.setattr(type(api.server._store), "project", explode)
        response = api.get("/projects/me")
        assert response.status_code == 500
        assert response.json()["code"] == "internal_error"
        assert "boom" in caplog.text


def test_completion_times_are_precise_and_public(sandbox, api_key):
    response = requests.post(
        f"{sandbox.base_url}/images",
        json={"prompt": "a harbour"},
        headers={"Authorization": f"Bearer {api_key}"},
        timeout=10,
    )
    job_id = response.json()["id"]
    finished = sandbox.finish_job(job_id)
    assert finished["status"] == "completed"
    ended = sandbox.completion_times()[job_id]
    assert abs(ended - time.time()) < 5
    assert ended != int(ended)

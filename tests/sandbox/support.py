"""Helpers for the sandbox's own tests: an API session, a webhook receiver, polling."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

import requests

from django_neuraldraft.sandbox import SANDBOX_API_KEY, SandboxServer
from django_neuraldraft.sandbox.jobs import Job

T = TypeVar("T")

REQUEST_ID = r"req_[0-9A-Za-z]{12}"

#: When ``make_job``'s jobs are created, unless a test says otherwise.
CREATED = 1_700_000_000.0


def make_job(
    duration: float = 10.0, *, job_id: str = "job_000000000000", created_at: float = CREATED
) -> Job:
    """A sandbox job whose timeline a test reads at chosen instants; its pace comes from its id."""
    return Job(
        id=job_id,
        prompt="p",
        style=None,
        aspect_ratio="16:9",
        key="hero",
        width=1024,
        height=576,
        cdn_path="/cdn/prj_sandbox/hero-00000000.png",
        mime_type="image/png",
        image_format="png",
        result_url="http://cdn.test/hero.png",
        created_at=created_at,
        duration=duration,
    )


def wait_until(check: Callable[[], T], *, timeout: float = 5.0, interval: float = 0.01) -> T:
    """Poll ``check`` until it returns something truthy, and return that; fail at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"Condition not met within {timeout} s")
        time.sleep(interval)


def iter_sse(response: requests.Response) -> Iterator[dict[str, Any]]:
    """Yield each event as ``{"id", "event", "data"}`` and each comment as ``{"comment"}``.

    Reads line by line as the bytes arrive, so tests can act between events.
    """
    fields: dict[str, str] = {}
    for line in response.iter_lines(decode_unicode=True):
        if line.startswith(":"):
            yield {"comment": line[1:].strip()}
        elif line:
            name, _, value = line.partition(":")
            fields[name] = value[1:] if value.startswith(" ") else value
        elif fields:
            yield {
                "id": int(fields["id"]),
                "event": fields["event"],
                "data": json.loads(fields["data"]),
            }
            fields = {}


class Api:
    """A ``requests`` session bound to one sandbox's ``/v1``, authenticated unless told not to."""

    def __init__(self, server: SandboxServer, key: str | None = SANDBOX_API_KEY) -> None:
        self.server = server
        self.session = requests.Session()
        if key is not None:
            self.session.headers["Authorization"] = f"Bearer {key}"

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 10)
        return self.session.request(method, self.server.base_url + path, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("PUT", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("PATCH", path, **kwargs)

    def generate(self, prompt: str = "A quiet harbour at dawn", **fields: Any) -> dict[str, Any]:
        """Start a generation and return the Job (asserting the 202)."""
        response = self.post("/images", json={"prompt": prompt, **fields})
        assert response.status_code == 202, response.text
        return response.json()

    def completed(self, prompt: str = "A quiet harbour at dawn", **fields: Any) -> dict[str, Any]:
        """Start a generation, finish it at once, and return the completed Job."""
        job = self.generate(prompt, **fields)
        self.server.finish_job(job["id"])
        return self.get(f"/jobs/{job['id']}").json()

    def wait_for_status(self, job_id: str, status: str, timeout: float = 5.0) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            job = self.get(f"/jobs/{job_id}").json()
            return job if job["status"] == status else None

        return wait_until(check, timeout=timeout)

    def upload(self, key: str, data: bytes, content_type: str = "image/png") -> requests.Response:
        return self.post(
            "/images", files={"file": ("upload", data, content_type)}, data={"key": key}
        )

    def close(self) -> None:
        self.session.close()


@dataclass
class Received:
    """One webhook POST as the receiver saw it."""

    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class WebhookReceiver:
    """A loopback HTTP server that records POSTs and answers a scripted list of statuses.

    ``statuses`` is consumed one per request (200 once it is empty);
    ``delays`` likewise, in seconds to wait before answering.
    """

    statuses: list[int] = field(default_factory=list)
    delays: list[float] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        receiver = self
        self._lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver._lock:
                    receiver.received.append(Received(dict(self.headers), body, time.time()))
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                    delay = receiver.delays.pop(0) if receiver.delays else 0.0
                if delay:
                    time.sleep(delay)
                payload = b'{"received": true}'
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:
                    pass

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/hooks/neuraldraft"

    def wait_for(self, count: int, timeout: float = 5.0) -> list[Received]:
        return wait_until(
            lambda: len(self.received) >= count and list(self.received), timeout=timeout
        )

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

"""Every endpoint against the sandbox, plus sessions, pickling, key masking and bad bodies."""

from __future__ import annotations

import io
import json
import logging
import pickle
import re
import socket
import threading

import pytest
import requests
from PIL import Image as PILImage

from django_neuraldraft import __version__
from django_neuraldraft.client import (
    AuthenticationError,
    ConflictError,
    Image,
    Job,
    MalformedResponseError,
    NeuralDraftClient,
    NotFoundError,
    ServerError,
    TransportError,
    ValidationFailedError,
)

from .local_http import send


def png_bytes(size: tuple[int, int] = (8, 6)) -> bytes:
    buffer = io.BytesIO()
    PILImage.new("RGB", size, "teal").save(buffer, "PNG")
    return buffer.getvalue()


class TestCreateImage:
    def test_sends_fields_and_returns_pending_job(self, client, sandbox):
        job = client.create_image(
            "A serene yoga studio", style="photorealistic", aspect_ratio="4:5", key="hero.yoga"
        )
        assert isinstance(job, Job)
        assert job.status == "pending"
        assert job.type == "image.generate"
        assert job.id.startswith("job_")
        request = sandbox.last_request("POST", "/v1/images")
        assert request.status == 202
        assert request.json == {
            "prompt": "A serene yoga studio",
            "style": "photorealistic",
            "aspect_ratio": "4:5",
            "key": "hero.yoga",
        }
        assert request.headers["Content-Type"] == "application/json"

    def test_omits_unset_fields(self, client, sandbox):
        client.create_image("A cat")
        assert sandbox.last_request("POST", "/v1/images").json == {"prompt": "A cat"}

    def test_generates_an_idempotency_key(self, client, sandbox):
        client.create_image("A cat")
        client.create_image("A cat")
        keys = [r.headers["Idempotency-Key"] for r in sandbox.requests]
        assert all(re.fullmatch(r"[0-9a-f]{32}", key) for key in keys)
        assert keys[0] != keys[1]
        assert len(sandbox.jobs) == 2

    def test_given_idempotency_key_replays_the_same_job(self, client, sandbox):
        first = client.create_image("A cat", idempotency_key="imagekey-7")
        second = client.create_image("A cat", idempotency_key="imagekey-7")
        assert first == second
        assert len(sandbox.jobs) == 1
        assert sandbox.requests[1].headers["Idempotency-Key"] == "imagekey-7"


class TestJobs:
    def test_get_job_through_completion(self, client, sandbox):
        created = client.create_image("A cat", aspect_ratio="16:9", key="hero.cat")
        assert client.get_job(created.id).id == created.id
        sandbox.finish_job(created.id)
        job = client.get_job(created.id)
        assert job.status == "completed" and job.is_terminal
        assert job.progress == 100
        assert job.result["key"] == "hero.cat"
        assert (job.result["width"], job.result["height"]) == (2048, 1152)
        assert [step.name for step in job.steps] == ["compose", "render", "upscale"]
        assert job.created_at.tzinfo is not None
        sandbox.assert_called("GET", f"/v1/jobs/{created.id}", times=2)

    def test_failed_job(self, client, sandbox):
        sandbox.set_fault("job_failure", code="upstream_unavailable", message="Model down.")
        job = client.create_image("A cat")
        sandbox.finish_job(job.id)
        failed = client.get_job(job.id)
        assert failed.status == "failed"
        assert (failed.error.code, failed.error.message) == ("upstream_unavailable", "Model down.")

    def test_cancel_job(self, client, sandbox):
        job = client.create_image("A cat")
        cancelled = client.cancel_job(job.id)
        assert cancelled.status == "cancelled" and cancelled.is_terminal
        sandbox.assert_called("POST", f"/v1/jobs/{job.id}/cancel", times=1)

    def test_cancel_twice_returns_the_cancelled_job(self, client, sandbox):
        job = client.create_image("A cat")
        client.cancel_job(job.id)
        again = client.cancel_job(job.id)
        assert again.status == "cancelled"
        posts = sandbox.assert_called("POST", f"/v1/jobs/{job.id}/cancel", times=2)
        assert [r.status for r in posts] == [200, 409]

    def test_cancel_whose_answer_was_lost(self, client, sandbox):
        job = client.create_image("A cat")
        path = f"/v1/jobs/{job.id}/cancel"
        sandbox.set_fault("drop_response", count=1, method="POST", path=path)
        assert client.cancel_job(job.id).status == "cancelled"
        assert [r.status for r in sandbox.assert_called("POST", path, times=2)] == [None, 409]

    def test_cancel_unknown_job(self, client):
        with pytest.raises(NotFoundError):
            client.cancel_job("job_000000000000")

    @pytest.mark.parametrize("job_id", ["", ".", ".."])
    def test_ids_that_would_change_the_path(self, client, sandbox, job_id):
        with pytest.raises(ValueError, match="job_id"):
            client.get_job(job_id)
        assert sandbox.requests == []

    def test_ids_are_quoted(self, client, sandbox):
        with pytest.raises(NotFoundError):
            client.get_job("job_1/cancel")
        assert sandbox.requests[0].path == "/v1/jobs/job_1%2Fcancel"
        assert sandbox.requests[0].method == "GET"


class TestImages:
    def test_get_generated_image(self, client, sandbox):
        job = client.create_image("A cat", aspect_ratio="1:1", key="hero.cat")
        sandbox.finish_job(job.id)
        client.get_job(job.id)
        image = client.get_image("hero.cat")
        assert isinstance(image, Image)
        assert (image.key, image.width, image.height) == ("hero.cat", 2048, 2048)
        assert image.generated is True
        assert image.mime_type == "image/jpeg"

    def test_upload(self, client, sandbox):
        """The sandbox answers an upload wrapped in ``{"data": ...}``, a read bare."""
        data = png_bytes()
        image = client.upload_image("logo.main", io.BytesIO(data), filename="logo.png")
        assert (image.key, image.width, image.height) == ("logo.main", 8, 6)
        assert image.bytes == len(data)
        assert image.generated is False
        request = sandbox.last_request("POST", "/v1/images")
        assert request.status == 201
        assert request.headers["Content-Type"].startswith("multipart/form-data")
        assert "Idempotency-Key" not in request.headers
        assert data in request.body
        assert b'filename="logo.png"' in request.body
        assert b"Content-Type: image/png" in request.body
        assert client.get_image("logo.main") == image

    def test_upload_names_the_part_after_the_file(self, client, sandbox, tmp_path):
        path = tmp_path / "brand.png"
        path.write_bytes(png_bytes())
        with path.open("rb") as fileobj:
            client.upload_image("logo.file", fileobj)
        body = sandbox.last_request("POST", "/v1/images").body
        assert b'filename="brand.png"' in body and b"Content-Type: image/png" in body

    def test_upload_rejected_bytes(self, client):
        with pytest.raises(ValidationFailedError) as caught:
            client.upload_image("logo.bad", io.BytesIO(b"not an image"), filename="x.png")
        assert "file" in caught.value.errors

    def test_upload_retry_resends_the_bytes(self, client, sandbox):
        sandbox.set_fault("status", status=503, count=1, method="POST")
        data = png_bytes()
        client.upload_image("logo.retry", io.BytesIO(data))
        first, second = sandbox.assert_called("POST", "/v1/images", times=2)
        assert data in first.body and data in second.body

    def test_upload_text_file_refused(self, client):
        with pytest.raises(TypeError, match="binary"):
            client.upload_image("logo.txt", io.StringIO("text"))


class TestSessions:
    def test_headers(self, client, sandbox, api_key):
        client.create_image("A cat")
        headers = sandbox.last_request().headers
        assert headers["Authorization"] == f"Bearer {api_key}"
        assert headers["User-Agent"] == (
            f"django-neuraldraft/{__version__} {requests.utils.default_user_agent()}"
        )
        assert "application/json" in headers["Accept"]

    def test_user_agent_suffix(self, sandbox, api_key):
        with NeuralDraftClient(api_key, sandbox.base_url, user_agent_suffix="mysite/2") as client:
            client.create_image("A cat")
        assert sandbox.last_request().headers["User-Agent"].endswith(" mysite/2")

    def test_one_session_per_thread_reused(self, client):
        sessions = {}

        def grab(name: str) -> None:
            sessions[name] = client._session()

        threads = [threading.Thread(target=grab, args=(n,)) for n in ("a", "b")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert client._session() is client._session()
        assert len({id(s) for s in (*sessions.values(), client._session())}) == 3

    def test_close_then_reuse(self, client):
        job = client.create_image("A cat")
        first = client._session()
        client.close()
        assert client._session() is not first
        assert client.get_job(job.id).id == job.id

    def test_pickle(self, client, sandbox, api_key):
        client.create_image("A cat")
        copy = pickle.loads(pickle.dumps(client))
        assert "_local" not in NeuralDraftClient.__getstate__(client)
        assert copy.base_url == client.base_url and copy.timeout == client.timeout
        assert copy.create_image("A dog").status == "pending"
        assert sandbox.last_request().headers["Authorization"] == f"Bearer {api_key}"

    def test_pickle_keeps_no_live_session(self, client):
        client._session()
        state = pickle.dumps(client)
        assert b"requests.sessions" not in state


class TestConstruction:
    @pytest.mark.parametrize("key", ["", None, "ndsk_test_abc\n", "ndsk test"])
    def test_unusable_keys(self, key):
        with pytest.raises(ValueError, match="api_key") as caught:
            NeuralDraftClient(key)
        assert "ndsk_test_abc" not in str(caught.value)

    def test_base_url(self, api_key):
        assert NeuralDraftClient(api_key).base_url == "https://api.neuraldraft.io/v1"
        assert NeuralDraftClient(api_key, "http://x/v1/").base_url == "http://x/v1"
        with pytest.raises(ValueError, match="base_url"):
            NeuralDraftClient(api_key, "api.neuraldraft.io/v1")

    def test_negative_retries(self, api_key):
        with pytest.raises(ValueError, match="max_retries"):
            NeuralDraftClient(api_key, max_retries=-1)

    def test_repr_masks_the_key(self, api_key):
        client = NeuralDraftClient(api_key, "http://127.0.0.1:9/v1")
        assert api_key not in repr(client)
        masked = f"ndsk_test_…{api_key[-4:]}"
        assert repr(client) == f"<NeuralDraftClient http://127.0.0.1:9/v1 key={masked}>"


class TestKeyNeverShown:
    """The full key must not leak through messages, reprs or DEBUG logs on any failure path.

    Logging is captured at DEBUG for every logger, requests' and urllib3's included.
    """

    def assert_hidden(self, key: str, error: Exception, caplog) -> None:
        texts = [str(error), repr(error), *(r.getMessage() for r in caplog.records)]
        assert any(r.name == "django_neuraldraft.client" for r in caplog.records)
        for text in texts:
            assert key not in text

    def test_auth_failure(self, sandbox, caplog):
        key = "ndsk_live_" + "Z" * 32
        caplog.set_level(logging.DEBUG)
        with pytest.raises(AuthenticationError) as caught:
            NeuralDraftClient(key, sandbox.base_url).get_job("job_000000000000")
        self.assert_hidden(key, caught.value, caplog)

    def test_server_error(self, client, sandbox, api_key, caplog):
        caplog.set_level(logging.DEBUG)
        sandbox.set_fault("status", status=500)
        with pytest.raises(ServerError) as caught:
            client.create_image("A cat")
        self.assert_hidden(api_key, caught.value, caplog)
        assert any("Retrying POST" in r.getMessage() for r in caplog.records)

    def test_transport_error(self, api_key, sleeps, caplog):
        caplog.set_level(logging.DEBUG)
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        client = NeuralDraftClient(api_key, f"http://127.0.0.1:{port}/v1")
        client._sleep = sleeps
        with pytest.raises(TransportError) as caught:
            client.get_job("job_1")
        self.assert_hidden(api_key, caught.value, caplog)
        assert api_key not in str(caught.value.__cause__)


class TestLogging:
    def test_one_debug_line_per_request(self, client, sandbox, api_key, caplog):
        caplog.set_level(logging.DEBUG, logger="django_neuraldraft.client")
        job = client.create_image("A cat")
        (record,) = [r for r in caplog.records if r.name == "django_neuraldraft.client"]
        request_id = sandbox.last_request().request_id
        assert record.levelno == logging.DEBUG
        assert record.getMessage().startswith(f"POST /v1/images -> 202 ({request_id}) in ")
        assert record.getMessage().endswith(" ms")
        assert job.id not in record.getMessage()

    def test_silent_above_debug(self, client, caplog):
        caplog.set_level(logging.INFO, logger="django_neuraldraft.client")
        client.create_image("A cat")
        assert caplog.records == []


class TestMalformedResponses:
    """Non-JSON and wrongly shaped 200s come from a local server: the sandbox never sends them."""

    def make_client(self, local_server, api_key, body: bytes, content_type: str):
        local_server.routes["/v1/jobs/job_1"] = lambda h: send(
            h, 200, body, {"Content-Type": content_type, "X-Request-Id": "req_local"}
        )
        return NeuralDraftClient(api_key, local_server.url("/v1"))

    def test_html_200(self, local_server, api_key):
        client = self.make_client(local_server, api_key, b"<html>Login</html>", "text/html")
        with pytest.raises(MalformedResponseError, match="Expected JSON, got text/html") as caught:
            client.get_job("job_1")
        assert (caught.value.status, caught.value.request_id) == (200, "req_local")
        assert len(local_server.requests) == 1

    def test_empty_200(self, local_server, api_key):
        client = self.make_client(local_server, api_key, b"", "application/json")
        with pytest.raises(MalformedResponseError):
            client.get_job("job_1")

    @pytest.mark.parametrize(
        "payload", [[1, 2], {"id": "job_1"}, {"data": {"id": "job_1", "status": 3}}]
    )
    def test_wrong_shape(self, local_server, api_key, payload):
        client = self.make_client(
            local_server, api_key, json.dumps(payload).encode(), "application/json"
        )
        with pytest.raises(MalformedResponseError) as caught:
            client.get_job("job_1")
        assert caught.value.request_id == "req_local"
        assert caught.value.method == "GET"
        assert caught.value.url.endswith("/v1/jobs/job_1")

    def test_error_body_that_is_html(self, local_server, api_key, sleeps):
        local_server.routes["/v1/jobs/job_1"] = lambda h: send(
            h, 502, b"<html>Bad gateway</html>", {"Content-Type": "text/html"}
        )
        client = NeuralDraftClient(api_key, local_server.url("/v1"))
        client._sleep = sleeps
        with pytest.raises(ServerError) as caught:
            client.get_job("job_1")
        assert caught.value.detail == "<html>Bad gateway</html>"
        assert caught.value.code is None
        assert len(local_server.requests) == 4

    def test_conflict_without_problem_body(self, local_server, api_key):
        local_server.routes["/v1/jobs/job_1"] = lambda h: send(h, 409)
        client = NeuralDraftClient(api_key, local_server.url("/v1"))
        with pytest.raises(ConflictError):
            client.get_job("job_1")

"""The key stays home: pinned connections, no redirects, scrubbed errors, bounded bodies."""

from __future__ import annotations

import io
import logging
import pickle

import pytest
import requests

from django_neuraldraft.client import (
    APIError,
    AuthenticationError,
    MalformedResponseError,
    NeuralDraftClient,
    ResponseTooLargeError,
    parse_http_url,
)
from django_neuraldraft.client._pinning import pinned_session
from django_neuraldraft.client.urls import HTTPURL

from .local_http import send
from .test_download import completed_image_url

HUGE = 200 * 1024 * 1024


class RebindingDNS:
    """Answers the sandbox's address first and another loopback address after that."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def __call__(self, url: HTTPURL) -> list:
        self.asked.append(url.host)
        answer = "127.0.0.1" if len(self.asked) == 1 else "127.0.0.2"
        return [parse_http_url(f"http://{answer}/").address]


class TestPinnedConnections:
    def test_connects_to_the_approved_address_and_keeps_the_host_name(self, client, sandbox):
        """The name does not exist in DNS: only the pinned address can have been used."""
        path = completed_image_url(client, sandbox).removeprefix(sandbox.origin)
        dns = RebindingDNS()
        url = f"http://cdn.rebind.test:{sandbox.port}{path}"
        info = client.download(url, io.BytesIO(), max_bytes=10_000_000, policy=dns)
        assert info.bytes > 0
        assert dns.asked == ["cdn.rebind.test"]
        seen = sandbox.requests[-1]
        assert seen.headers["Host"] == f"cdn.rebind.test:{sandbox.port}"
        assert "Authorization" not in seen.headers  # another host is another origin

    def test_a_pinned_session_refuses_any_other_origin(self, sandbox):
        url = parse_http_url(f"{sandbox.origin}/cdn/a.png")
        with pinned_session(url, url.address) as session:
            with pytest.raises(requests.exceptions.InvalidURL, match="pinned"):
                session.get(f"http://127.0.0.1:{sandbox.port + 1}/cdn/a.png", timeout=2)


class TestTheKeyStaysWithTheAPI:
    def test_api_calls_never_follow_a_redirect(self, api_key, local_server):
        local_server.routes["/v1/jobs/job_1"] = lambda h: send(
            h, 302, headers={"Location": local_server.url("/collect")}
        )
        with NeuralDraftClient(api_key, local_server.url("/v1"), max_retries=0) as api:
            with pytest.raises(APIError, match="never follow redirects"):
                api.get_job("job_1")
        assert [request.path for request in local_server.requests] == ["/v1/jobs/job_1"]

    @pytest.mark.parametrize(
        "key", ["ndsk_live_" + "7yQp" * 8, "a-key-in-no-known-format-0123456789"]
    )
    def test_an_echoed_key_is_in_no_error_and_no_log(self, key, sandbox, caplog):
        sandbox.set_fault("echo_authorization", count=1)
        caplog.set_level(logging.DEBUG, logger="django_neuraldraft")
        with NeuralDraftClient(key, sandbox.base_url, max_retries=0) as api:
            with pytest.raises(AuthenticationError) as caught:
                api.get_job("job_1")
            logging.getLogger("django_neuraldraft.test").warning("failed", exc_info=caught.value)
        error = caught.value
        assert key in sandbox.requests[-1].headers["Authorization"]
        assert "refused" in error.detail
        held = [
            str(error),
            repr(error),
            repr(error.args),
            repr(vars(error)),
            repr(dict(error.response.request.headers)),
            pickle.dumps(error).decode("latin-1"),
            caplog.text,
        ]
        assert [text for text in held if key in text] == []

    def test_a_problem_document_is_scrubbed_wherever_it_repeats_the_key(
        self, api_key, local_server
    ):
        body = (
            b'{"code": "unauthorized", "title": "Bad key %s", "detail": "%s",'
            b' "errors": {"key": ["%s"]}, "instance": "req_%s"}'
        ) % ((api_key.encode(),) * 4)

        local_server.routes["/v1/jobs/job_1"] = lambda h: send(
            h, 401, body, {"Content-Type": "application/problem+json"}
        )
        with NeuralDraftClient(api_key, local_server.url("/v1"), max_retries=0) as api:
            with pytest.raises(AuthenticationError) as caught:
                api.get_job("job_1")
        assert api_key not in repr(vars(caught.value))


class TestBoundedBodies:
    def test_a_huge_json_body_is_refused_without_reading_it(self, client, sandbox):
        fault = sandbox.set_fault("huge_body", bytes=HUGE, path="/v1/jobs/")
        with pytest.raises(ResponseTooLargeError, match="refused past 4194304 bytes"):
            client.get_job("job_1")
        # The server stops once the socket buffers fill behind the closed connection.
        assert fault.served < HUGE // 8

    def test_a_declared_length_over_the_bound_is_refused_before_reading(
        self, api_key, local_server
    ):
        local_server.routes["/v1/jobs/job_1"] = lambda h: send(
            h,
            200,
            b"{}",
            {"Content-Type": "application/json", "Content-Length": str(HUGE)},
            length=False,
        )
        with NeuralDraftClient(api_key, local_server.url("/v1"), max_retries=0) as api:
            with pytest.raises(ResponseTooLargeError, match=f"Content-Length {HUGE}"):
                api.get_job("job_1")

    def test_a_large_answer_under_the_bound_is_read(self, client, sandbox):
        sandbox.set_fault("huge_body", bytes=3 * 1024 * 1024, path="/v1/jobs/", count=1)
        with pytest.raises(MalformedResponseError) as caught:
            client.get_job("job_1")
        # Read whole and parsed: it fails as a job of the wrong shape, not as too large.
        assert not isinstance(caught.value, ResponseTooLargeError)

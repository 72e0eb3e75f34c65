"""Retry rules: what is retried, how long the client waits, and idempotent replays."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest
import requests

from django_neuraldraft.client import (
    APIError,
    AuthenticationError,
    BadRequestError,
    MalformedResponseError,
    NeuralDraftClient,
    NotFoundError,
    RateLimitedError,
    ServerError,
    TransportError,
    ValidationFailedError,
    error_for_response,
)
from django_neuraldraft.client._retry import RETRY_AFTER_CEILING, RetryPolicy, parse_retry_after


def upper_bound(low: float, high: float) -> float:
    return high


def eventually(condition: Callable[[], bool], timeout: float = 2.0) -> bool:
    """Poll ``condition``: the sandbox logs a slow request only once it has handled it."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


@pytest.fixture
def ahead_of_utc(monkeypatch) -> Iterator[None]:
    """The process's local zone is 14 hours ahead of UTC for the test."""
    monkeypatch.setenv("TZ", "Pacific/Kiritimati")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


class TestPolicy:
    def test_full_jitter_bounds(self):
        policy = RetryPolicy(max_retries=10, backoff_base=0.5, backoff_cap=30.0)
        assert [policy.backoff(n, upper_bound) for n in range(8)] == [
            0.5,
            1.0,
            2.0,
            4.0,
            8.0,
            16.0,
            30.0,
            30.0,
        ]
        assert policy.backoff(3, lambda low, high: low) == 0.0
        assert all(0.0 <= policy.backoff(4) <= 8.0 for _ in range(100))

    def test_what_is_retried(self):
        policy = RetryPolicy(max_retries=3)
        server = error_for_response(503, None)
        assert policy.delay(server, 0, upper_bound) == 0.5
        assert policy.delay(TransportError("reset"), 2, upper_bound) == 2.0
        assert policy.delay(server, 3) is None
        for status in (400, 401, 402, 403, 404, 409, 422):
            assert policy.delay(error_for_response(status, None), 0) is None
        assert policy.delay(MalformedResponseError("x"), 0) is None

    def test_rate_limited(self):
        policy = RetryPolicy(max_retries=3, max_retry_after=120.0)
        assert policy.delay(error_for_response(429, None, retry_after=14.0), 0) == 14.0
        assert policy.delay(error_for_response(429, None, retry_after=120.0), 2) == 120.0
        assert policy.delay(error_for_response(429, None, retry_after=121.0), 0) is None
        without = error_for_response(429, None)
        assert policy.delay(without, 1, upper_bound) == 1.0

    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ("14", 14.0),
            (" 0 ", 0.0),
            (None, None),
            ("", None),
            ("soon", None),
            ("-3", None),
            ("86400", 86_400.0),
            (str(10**12), RETRY_AFTER_CEILING),
            ("9" * 400, RETRY_AFTER_CEILING),
        ],
    )
    def test_parse_retry_after_seconds(self, value, expected):
        assert parse_retry_after(value) == expected

    def test_parse_retry_after_http_date(self):
        now = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)
        later = format_datetime(now + timedelta(seconds=30), usegmt=True)
        assert parse_retry_after(later, now=now.timestamp) == 30.0
        earlier = format_datetime(now - timedelta(seconds=30), usegmt=True)
        assert parse_retry_after(earlier, now=now.timestamp) == 0.0

    @pytest.mark.parametrize("zone", ["GMT", "-0000", "-1400"])
    def test_a_date_at_the_end_of_the_calendar_is_read_as_the_ceiling(self, zone):
        assert parse_retry_after(f"Fri, 31 Dec 9999 23:59:59 {zone}") == RETRY_AFTER_CEILING

    def test_a_date_without_a_zone_is_gmt_whatever_the_local_zone(self, ahead_of_utc):
        now = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)
        assert parse_retry_after("Tue, 24 Nov 2026 12:00:30 -0000", now=now.timestamp) == 30.0


class TestAgainstSandbox:
    def test_rate_limit_waits_retry_after(self, client, sandbox, sleeps):
        sandbox.set_fault("rate_limit", retry_after=7, count=1)
        job = client.create_image("A cat")
        assert sleeps.waits == [7.0]
        posts = sandbox.assert_called("POST", "/v1/images", times=2)
        assert [r.status for r in posts] == [429, 202]
        assert job.status == "pending"

    def test_rate_limit_beyond_max_retry_after_raises_at_once(self, sandbox, api_key, sleeps):
        client = NeuralDraftClient(api_key, sandbox.base_url, max_retry_after=5)
        client._sleep = sleeps
        sandbox.set_fault("rate_limit", retry_after=60)
        with pytest.raises(RateLimitedError) as caught:
            client.get_job("job_000000000000")
        assert caught.value.retry_after == 60.0
        assert sleeps.waits == []
        assert len(sandbox.requests) == 1

    def test_an_absurd_retry_after_is_read_as_the_ceiling(self, client, sandbox, sleeps):
        sandbox.set_fault("rate_limit", retry_after=10**12)
        with pytest.raises(RateLimitedError) as caught:
            client.get_job("job_000000000000")
        assert caught.value.retry_after == RETRY_AFTER_CEILING
        assert sleeps.waits == []

    @pytest.mark.parametrize("status", [500, 502, 503])
    def test_server_error_retried_then_success(self, client, sandbox, sleeps, status):
        job = client.create_image("A cat")
        sandbox.set_fault("status", status=status, count=2, method="GET")
        assert client.get_job(job.id).id == job.id
        gets = sandbox.assert_called("GET", f"/v1/jobs/{job.id}", times=3)
        assert [r.status for r in gets] == [status, status, 200]
        assert len(sleeps.waits) == 2
        assert 0 <= sleeps.waits[0] <= 0.5 and 0 <= sleeps.waits[1] <= 1.0

    @pytest.mark.parametrize("status", [400, 401, 402, 403, 404, 409, 422])
    def test_client_errors_never_retried(self, client, sandbox, sleeps, status):
        sandbox.set_fault("status", status=status)
        with pytest.raises(APIError) as caught:
            client.create_image("A cat")
        assert caught.value.status == status
        assert len(sandbox.requests) == 1
        assert sleeps.waits == []

    def test_real_client_errors_never_retried(self, client, sandbox, sleeps, api_key):
        with pytest.raises(NotFoundError):
            client.get_job("job_000000000000")
        with pytest.raises(ValidationFailedError):
            client.create_image("")
        with pytest.raises(AuthenticationError):
            NeuralDraftClient("ndsk_test_short", sandbox.base_url).get_job("job_x")
        assert len(sandbox.requests) == 3
        assert sleeps.waits == []

    def test_max_retries_exhausted(self, sandbox, api_key, sleeps):
        client = NeuralDraftClient(api_key, sandbox.base_url, max_retries=2)
        client._sleep = sleeps
        sandbox.set_fault("status", status=503)
        with pytest.raises(ServerError) as caught:
            client.get_job("job_000000000000")
        assert caught.value.status == 503
        assert len(sandbox.requests) == 3
        assert len(sleeps.waits) == 2

    def test_no_retries(self, sandbox, api_key, sleeps):
        client = NeuralDraftClient(api_key, sandbox.base_url, max_retries=0)
        client._sleep = sleeps
        sandbox.set_fault("status", status=503)
        with pytest.raises(ServerError):
            client.get_job("job_000000000000")
        assert len(sandbox.requests) == 1

    def test_dropped_response_replayed_with_same_idempotency_key(self, client, sandbox, sleeps):
        sandbox.set_fault("drop_response", count=1, method="POST", path="/v1/images")
        job = client.create_image("A cat", key="hero.cat")
        assert len(sandbox.jobs) == 1
        assert job.id in sandbox.jobs
        first, second = sandbox.assert_called("POST", "/v1/images", times=2)
        assert first.status is None
        assert second.status == 202
        key = first.headers["Idempotency-Key"]
        assert key and second.headers["Idempotency-Key"] == key
        assert first.body == second.body
        assert len(sleeps.waits) == 1

    def test_timeout_is_a_transport_error_and_retried(self, sandbox, api_key, sleeps):
        client = NeuralDraftClient(api_key, sandbox.base_url, timeout=(2, 0.05), max_retries=1)
        client._sleep = sleeps
        sandbox.set_fault("latency", seconds=0.3, method="GET")
        with pytest.raises(TransportError) as caught:
            client.get_job("job_000000000000")
        assert isinstance(caught.value.__cause__, requests.Timeout)
        assert len(sleeps.waits) == 1
        assert eventually(lambda: len(sandbox.requests) == 2)

    def test_timeout_then_success(self, client, sandbox, api_key, sleeps):
        job = client.create_image("A cat")
        slow = NeuralDraftClient(api_key, sandbox.base_url, timeout=(2, 0.05))
        slow._sleep = sleeps
        sandbox.set_fault("latency", seconds=0.3, method="GET", count=1)
        assert slow.get_job(job.id).id == job.id
        assert len(sleeps.waits) == 1

    def test_connection_refused(self, api_key, sleeps):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        client = NeuralDraftClient(api_key, f"http://127.0.0.1:{port}/v1", max_retries=2)
        client._sleep = sleeps
        with pytest.raises(TransportError) as caught:
            client.get_job("job_1")
        assert isinstance(caught.value.__cause__, requests.ConnectionError)
        assert len(sleeps.waits) == 2
        assert caught.value.status is None

    def test_bad_request_not_retried_and_typed(self, client, sandbox):
        sandbox.set_fault("status", status=400, code="bad_request")
        with pytest.raises(BadRequestError):
            client.cancel_job("job_000000000000")
        assert len(sandbox.requests) == 1

"""Answers no well-behaved API sends: whatever their shape, the client raises a NeuralDraftError.

Each answer comes from the sandbox's fault injection (or, for bytes it cannot
send, a local server), over loopback HTTP; none may escape as a bare
``RecursionError`` or ``ValueError``, reach a caller as a value a database
refuses, or keep the raw key.
"""

from __future__ import annotations

import io
import json
import logging

import pytest

from django_neuraldraft.client import (
    APIError,
    AuthenticationError,
    MalformedResponseError,
    NeuralDraftClient,
    NeuralDraftError,
    RateLimitedError,
)

from .local_http import send

JOB = {
    "id": "job_1",
    "type": "image.generate",
    "status": "processing",
    "created_at": "2026-04-19T10:14:22Z",
}


class TestJSONParsedAsNothingDownstreamChokesOn:
    def test_json_nested_too_deep_for_a_recursive_parser_is_malformed(self, client, sandbox):
        sandbox.set_fault("huge_body", bytes=200_000, shape="nested", path="/v1/jobs/")
        with pytest.raises(MalformedResponseError, match="nested deeper than 32 levels"):
            client.get_job("job_1")

    def test_an_error_body_nested_too_deep_still_gives_the_status_error(
        self, api_key, local_server
    ):
        body = b"[" * 50_000 + b"]" * 50_000
        local_server.routes["/v1/jobs/job_1"] = lambda h: send(
            h, 401, body[:60_000], {"Content-Type": "application/problem+json"}
        )
        with NeuralDraftClient(api_key, local_server.url("/v1"), max_retries=0) as api:
            with pytest.raises(AuthenticationError):
                api.get_job("job_1")

    @pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
    def test_nan_and_infinity_are_malformed(self, constant, api_key, local_server):
        body = json.dumps(JOB)[:-1].encode() + b', "score": %s}' % constant.encode()
        local_server.routes["/v1/jobs/job_1"] = lambda h: send(
            h, 200, body, {"Content-Type": "application/json"}
        )
        with NeuralDraftClient(api_key, local_server.url("/v1"), max_retries=0) as api:
            with pytest.raises(MalformedResponseError, match=f"{constant} is not a JSON value"):
                api.get_job("job_1")

    def test_a_lone_surrogate_becomes_a_replacement_character(self, api_key, local_server):
        body = json.dumps({**JOB, "message": "half \\ud83d a pair"}).replace("\\\\", "\\")
        local_server.routes["/v1/jobs/job_1"] = lambda h: send(
            h, 200, body.encode(), {"Content-Type": "application/json"}
        )
        with NeuralDraftClient(api_key, local_server.url("/v1"), max_retries=0) as api:
            job = api.get_job("job_1")
        assert job.message == "half \ufffd a pair"
        job.message.encode("utf-8")


class TestTheKeyInSuccessAnswers:
    def test_a_job_that_repeats_the_key_holds_it_nowhere(self, client, sandbox, api_key):
        sandbox.set_fault("echo_authorization", into="job", path="/v1/jobs/", count=1)
        job = client.get_job("job_1")
        assert api_key in sandbox.requests[-1].headers["Authorization"]
        assert job.status == "failed"
        assert api_key not in repr(job) + repr(job.raw)
        assert "ndsk_test_…" in job.error.message


class TestEventStreamsAreBounded:
    def test_a_stream_that_never_ends_a_line_is_refused(self, client, sandbox):
        fault = sandbox.set_fault("huge_body", bytes=50_000_000, path="/v1/jobs/job_1/stream")
        with pytest.raises(MalformedResponseError, match="longer than 65536 characters"):
            next(client.stream_job("job_1"))
        assert fault.served < 50_000_000 // 8


class TestNumbersInHeaders:
    """Header values the sandbox does not send: a local server writes them byte for byte.

    ``"\\xb2"`` is ``²`` in latin-1, the charset http.client reads headers in:
    ``str.isdigit`` takes it for a digit, ``int`` and ``float`` do not.
    """

    @pytest.mark.parametrize("length", ["\xb2", "\xb9\xb2", "9" * 5000])
    def test_a_content_length_that_is_no_ascii_number(self, length, api_key, local_server):
        local_server.routes["/v1/jobs/job_1"] = lambda h: send(
            h,
            200,
            b"{}",
            {"Content-Type": "application/json", "Content-Length": length},
            length=False,
        )
        local_server.routes["/cdn/x.png"] = local_server.routes["/v1/jobs/job_1"]
        with NeuralDraftClient(api_key, local_server.url("/v1"), max_retries=0) as api:
            with pytest.raises(NeuralDraftError):
                api.get_job("job_1")
            with pytest.raises(NeuralDraftError):
                api.download(local_server.url("/cdn/x.png"), io.BytesIO(), max_bytes=1)

    def test_a_retry_after_that_is_no_ascii_number(self, api_key, local_server):
        local_server.routes["/v1/jobs/job_1"] = lambda h: send(
            h, 429, b"{}", {"Content-Type": "application/json", "Retry-After": "\xb2"}
        )
        with NeuralDraftClient(api_key, local_server.url("/v1"), max_retries=0) as api:
            with pytest.raises(RateLimitedError) as caught:
                api.get_job("job_1")
        assert caught.value.retry_after is None


class TestTextFromAnswersIsBoundedAndPrintable:
    def test_a_key_echoed_in_headers_is_in_no_log_and_no_error(self, client, sandbox, caplog):
        sandbox.set_fault("echo_authorization", into="headers", count=1)
        caplog.set_level(logging.DEBUG)
        with pytest.raises(AuthenticationError) as caught:
            client.get_job("job_1")
        key = sandbox.requests[-1].headers["Authorization"].removeprefix("Bearer ")
        assert "ndsk_test_…" in caught.value.request_id
        held = [caplog.text, repr(vars(caught.value)), repr(caught.value.response.headers)]
        assert [text for text in held if key in text] == []

    def test_escape_sequences_and_megabytes_are_neither_kept_nor_shown(self, client, sandbox):
        hostile = "\x1b]0;owned\x07\x1b[2J\r\nFAKE\u2066" + "x" * 60_000
        request_id = hostile.replace("\r\n", " ")
        sandbox.set_fault("status", status=409, detail=hostile, request_id=request_id, count=1)
        with pytest.raises(APIError) as caught:
            client.get_job("job_1")
        error = caught.value
        for text in (str(error), error.detail, error.request_id, error.message):
            assert not any(char in text for char in "\x1b\x07\r\n\u2066")
        assert "\\x1b[2J\\r\\nFAKE" in error.detail
        assert len(error.detail) <= 1000 and len(error.request_id) <= 200
        assert len(str(error)) <= 2000

    def test_every_character_python_does_not_print_is_escaped(self, client, sandbox):
        """Formatting characters that hide or reorder text, not only controls and bidi
        overrides: the Arabic letter mark, the word joiner, interlinear annotation
        marks, a soft hyphen, a no-break space, a private-use character."""
        hidden = "\u061c\u2060\ufff9\u00ad\u00a0\ue000"
        sandbox.set_fault("status", status=409, detail=f"a{hidden}b", count=1)
        with pytest.raises(APIError) as caught:
            client.get_job("job_1")
        assert caught.value.detail == "a\\u061c\\u2060\\ufff9\\xad\\xa0\\ue000b"


class TestKeysOfAnotherShape:
    @pytest.mark.parametrize("length", [20, 31, 33, 48])
    def test_a_key_like_token_of_any_length_is_masked_whole(self, client, sandbox, length):
        """A project key in a new format, or an echo cut short or padded, shows no part of it."""
        other = "ndsk_live_" + "Zq9" * 20
        other = other[: len("ndsk_live_") + length]
        sandbox.set_fault("status", status=403, detail=f"Key {other} may not read this.", count=1)
        with pytest.raises(APIError) as caught:
            client.get_job("job_1")
        assert caught.value.detail == "Key ndsk_live_… may not read this."
        assert "Zq9" not in str(caught.value)

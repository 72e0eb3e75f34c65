"""Server-sent events: the parser on exact bytes, and ``stream_job`` against real servers."""

from __future__ import annotations

import json
import logging
import time

import pytest
import urllib3

from django_neuraldraft.client import (
    JobEvent,
    MalformedResponseError,
    NeuralDraftClient,
    NotFoundError,
    TransportError,
)
from django_neuraldraft.client.sse import EventStreamParser, iter_events

from .local_http import send

STREAM = (
    b": ping\n\n"
    b'id: 1\nevent: progress\ndata: {"progress": 10, "message": "Composing"}\n\n'
    b'id: 2\nevent: step\ndata: {"name": "compose", "completed": true, "active": false}\n\n'
    b'id: 3\nevent: done\ndata: {"result": {"url": "u", "key": null, "width": 1, "height": 1}}\n\n'
)


def parse(data: bytes) -> list[JobEvent]:
    return list(iter_events([data]))


class TestParser:
    """The parser is fed bytes directly: a byte-level contract no server is needed for."""

    def test_event_kinds(self):
        events = parse(
            STREAM + b'id: 4\nevent: error\ndata: {"code": "cancelled", "message": "x"}\n\n'
        )
        assert [(e.event, e.id) for e in events] == [
            ("progress", "1"),
            ("step", "2"),
            ("done", "3"),
            ("error", "4"),
        ]
        assert events[0].data == {"progress": 10, "message": "Composing"}
        assert events[1].data["active"] is False
        assert events[2].data["result"]["url"] == "u"

    def test_multi_line_data_joined_with_newline(self):
        (event,) = parse(b'event: done\ndata: {"result":\ndata:  {"a": "b"}}\n\n')
        assert event.data == {"result": {"a": "b"}}

    def test_comments_and_unknown_fields_are_ignored(self):
        events = parse(b": ping\n:\nretry: 10\nfoo: bar\nevent: progress\ndata: {}\n\n: ping\n\n")
        assert events == [JobEvent("progress", {}, None)]

    def test_default_event_name_and_space_handling(self):
        (event,) = parse(b'data:{"a":1}\n\n')
        assert (event.event, event.data) == ("message", {"a": 1})

    def test_id_carries_over_until_reset(self):
        events = parse(
            b"id: 7\ndata: {}\n\ndata: {}\n\nid\ndata: {}\n\nid: bad\x00id\ndata: {}\n\n"
        )
        assert [e.id for e in events] == ["7", "7", None, None]

    def test_event_without_data_is_not_dispatched(self):
        assert parse(b"event: progress\n\nid: 3\n\n") == []

    def test_unfinished_event_at_end_of_stream_is_dropped(self):
        assert parse(b'event: done\ndata: {"result": {}}\n') == []

    @pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"])
    def test_every_line_ending(self, newline):
        data = STREAM.replace(b"\n", newline)
        assert [e.id for e in parse(data)] == ["1", "2", "3"]

    def test_byte_by_byte_with_crlf_split_across_chunks(self):
        data = ("\ufeff" + STREAM.decode().replace("Composing", "Komposé")).encode()
        data = data.replace(b"\n", b"\r\n")
        events = list(iter_events(data[i : i + 1] for i in range(len(data))))
        assert [e.id for e in events] == ["1", "2", "3"]
        assert events[0].data["message"] == "Komposé"

    def test_lone_cr_at_end_of_stream_ends_the_event(self):
        parser = EventStreamParser()
        assert parser.feed(b"data: {}\r\r") == []
        assert parser.close() == [JobEvent("message", {}, None)]

    def test_crlf_split_does_not_dispatch_early(self):
        parser = EventStreamParser()
        assert parser.feed(b'data: {"a": 1}\r') == []
        assert parser.feed(b"\n\r") == []
        assert parser.feed(b"\n") == [JobEvent("message", {"a": 1}, None)]

    @pytest.mark.parametrize("data", [b"data: not json\n\n", b"data: [1]\n\n"])
    def test_data_must_be_a_json_object(self, data):
        with pytest.raises(MalformedResponseError):
            parse(data)


def create_job(client: NeuralDraftClient) -> str:
    return client.create_image("A lighthouse at dusk", key="sse.test").id


class TestStreamJob:
    def test_streams_until_done(self, client, sandbox):
        job_id = create_job(client)
        events = list(client.stream_job(job_id))
        kinds = [e.event for e in events]
        assert kinds[-1] == "done"
        assert {"progress", "step"} <= set(kinds)
        assert events[-1].data["result"]["key"] == "sse.test"
        ids = [int(e.id) for e in events]
        assert ids == sorted(ids) and len(set(ids)) == len(ids)
        (request,) = sandbox.assert_called("GET", f"/v1/jobs/{job_id}/stream", times=1)
        assert request.headers["Accept"] == "text/event-stream"

    def test_last_event_id_resumes_after_it(self, client, sandbox):
        job_id = create_job(client)
        first = list(client.stream_job(job_id))
        resumed = list(client.stream_job(job_id, last_event_id=first[1].id))
        assert resumed == first[2:]
        assert sandbox.last_request("GET").headers["Last-Event-ID"] == first[1].id

    def test_cancelled_job_ends_with_error_event(self, client):
        job_id = create_job(client)
        client.cancel_job(job_id)
        events = list(client.stream_job(job_id))
        assert events[-1].event == "error"
        assert events[-1].data == {"code": "cancelled", "message": "Job was cancelled."}

    def test_unknown_job_raises_not_found(self, client):
        with pytest.raises(NotFoundError):
            next(client.stream_job("job_000000000000"))

    def test_dropped_stream_is_reopened(self, client, sandbox, sleeps):
        job_id = create_job(client)
        path = f"/v1/jobs/{job_id}/stream"
        sandbox.set_fault("drop_response", count=1, method="GET", path=path)
        events = list(client.stream_job(job_id))
        assert events[-1].event == "done"
        sandbox.assert_called("GET", path, times=2)
        assert len(sleeps.waits) == 1

    def test_without_read1(self, client, monkeypatch):
        """urllib3 < 2.3 has no ``HTTPResponse.read1``: removing it takes the byte-wise path."""
        monkeypatch.delattr(urllib3.response.HTTPResponse, "read1")
        monkeypatch.delattr(urllib3.response.BaseHTTPResponse, "read1")
        events = list(client.stream_job(create_job(client)))
        assert events[-1].event == "done"


def sse_body(*events: tuple[int, str, dict]) -> bytes:
    return b"".join(
        f"id: {n}\nevent: {kind}\ndata: {json.dumps(data)}\n\n".encode()
        for n, kind, data in events
    )


class TestReconnect:
    """A local server cuts the stream mid-way, which the sandbox never does."""

    def test_resumes_with_last_event_id(self, local_server, api_key, sleeps):
        def stream(handler):
            if handler.headers.get("Last-Event-ID") == "1":
                body = sse_body((2, "done", {"result": {}}))
            else:
                body = sse_body((1, "progress", {"progress": 50, "message": ""}))
            send(handler, 200, body, {"Content-Type": "text/event-stream"}, length=False)

        local_server.routes["/v1/jobs/job_1/stream"] = stream
        client = NeuralDraftClient(api_key, local_server.url("/v1"))
        client._sleep = sleeps
        events = list(client.stream_job("job_1"))
        assert [(e.event, e.id) for e in events] == [("progress", "1"), ("done", "2")]
        assert [r.headers.get("Last-Event-ID") for r in local_server.requests] == [None, "1"]

    def test_resumes_after_a_read_timeout_mid_stream(self, local_server, api_key, sleeps, caplog):
        def stream(handler):
            if handler.headers.get("Last-Event-ID") == "1":
                body = sse_body((2, "done", {"result": {}}))
                send(handler, 200, body, {"Content-Type": "text/event-stream"}, length=False)
                return
            handler.send_response(200)
            handler.send_header("Content-Type", "text/event-stream")
            handler.send_header("Connection", "close")
            handler.end_headers()
            handler.wfile.write(sse_body((1, "progress", {"progress": 50, "message": ""})))
            handler.wfile.flush()
            time.sleep(0.5)
            handler.close_connection = True

        local_server.routes["/v1/jobs/job_1/stream"] = stream
        client = NeuralDraftClient(api_key, local_server.url("/v1"), timeout=(2, 0.1))
        client._sleep = sleeps
        with caplog.at_level(logging.INFO, logger="django_neuraldraft.client"):
            events = list(client.stream_job("job_1"))
        assert [e.id for e in events] == ["1", "2"]
        assert len(sleeps.waits) == 1
        assert "Read timed out" in caplog.records[-1].getMessage()

    def test_gives_up_after_max_retries(self, local_server, api_key, sleeps):
        def stream(handler):
            send(handler, 200, b": ping\n\n", {"Content-Type": "text/event-stream"}, length=False)

        local_server.routes["/v1/jobs/job_1/stream"] = stream
        client = NeuralDraftClient(api_key, local_server.url("/v1"), max_retries=2)
        client._sleep = sleeps
        with pytest.raises(TransportError, match="Stream ended before a done or error event"):
            list(client.stream_job("job_1"))
        assert len(local_server.requests) == 3
        assert len(sleeps.waits) == 2

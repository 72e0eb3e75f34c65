"""The job progress stream: framing, resume with Last-Event-ID, heartbeats, cancel and failure."""

from __future__ import annotations

import re

import pytest

from tests.sandbox.support import iter_sse

EVENT_BLOCK = re.compile(r"id: \d+\nevent: (progress|step|done|error)\ndata: \{.*\}\n\n")


def stream(api, job_id, **headers):
    return api.get(f"/jobs/{job_id}/stream", headers=headers, stream=True)


def events_of(response) -> list[dict]:
    with response:
        return [item for item in iter_sse(response) if "event" in item]


class TestFraming:
    def test_a_completed_job_replays_its_whole_run_then_done(self, api):
        job = api.completed(key="hero")
        response = stream(api, job["id"])
        assert response.status_code == 200
        assert response.headers["Content-Type"] == "text/event-stream"
        events = events_of(response)
        assert [event["id"] for event in events] == list(range(1, 19))
        assert events[0] == {
            "id": 1,
            "event": "progress",
            "data": {"progress": 0, "message": "Queued"},
        }
        assert events[-1] == {"id": 18, "event": "done", "data": {"result": job["result"]}}
        progress = [e["data"]["progress"] for e in events if e["event"] == "progress"]
        assert progress == sorted(progress) and progress[-1] == 100
        steps = [(e["data"]["name"], e["data"]["active"]) for e in events if e["event"] == "step"]
        assert steps == [
            ("compose", True),
            ("compose", False),
            ("render", True),
            ("render", False),
            ("upscale", True),
            ("upscale", False),
        ]

    def test_raw_bytes_are_event_blocks(self, api):
        job = api.completed()
        text = api.get(f"/jobs/{job['id']}/stream").text
        blocks = EVENT_BLOCK.findall(text)
        assert len(blocks) == 18
        assert EVENT_BLOCK.sub("", text) == ""

    def test_a_live_stream_follows_the_job(self, make_api):
        api = make_api(job_seconds=0.4)
        job = api.generate()
        events = events_of(stream(api, job["id"]))
        assert [event["id"] for event in events] == list(range(1, 19))
        assert events[-1]["event"] == "done"
        assert api.get(f"/jobs/{job['id']}").json()["status"] == "completed"

    def test_the_connection_is_reusable_after_the_stream(self, api):
        job = api.completed()
        events_of(stream(api, job["id"]))
        assert api.get("/projects/me").status_code == 200

    def test_unknown_job_is_a_404_problem(self, api):
        response = api.get("/jobs/job_missing/stream")
        assert response.status_code == 404
        assert response.headers["Content-Type"] == "application/problem+json"

    def test_stream_needs_auth(self, api):
        job = api.generate()
        response = api.session.get(
            api.server.base_url + f"/jobs/{job['id']}/stream",
            headers={"Authorization": ""},
            timeout=5,
        )
        assert response.status_code == 401


class TestResume:
    @pytest.mark.parametrize(("last", "first"), [("5", 6), ("0", 1), ("junk", 1), ("-3", 1)])
    def test_last_event_id_skips_what_was_seen(self, api, last, first):
        job = api.completed()
        events = events_of(stream(api, job["id"], **{"Last-Event-ID": last}))
        assert events[0]["id"] == first
        assert events[-1] == {"id": 18, "event": "done", "data": {"result": job["result"]}}

    def test_everything_seen_means_an_empty_stream(self, api):
        job = api.completed()
        assert events_of(stream(api, job["id"], **{"Last-Event-ID": "18"})) == []


class TestEndings:
    def test_cancel_ends_the_stream_with_an_error_event(self, make_api):
        api = make_api(job_seconds=30)
        job = api.generate()
        with stream(api, job["id"]) as response:
            items = iter_sse(response)
            assert next(items)["id"] == 1
            api.post(f"/jobs/{job['id']}/cancel")
            rest = list(items)
        assert rest == [
            {
                "id": 2,
                "event": "error",
                "data": {"code": "cancelled", "message": "Job was cancelled."},
            }
        ]

    def test_a_failed_job_ends_with_its_error(self, api):
        api.server.set_fault("job_failure", code="upstream_unavailable", message="Model down.")
        job = api.generate()
        api.server.finish_job(job["id"])
        events = events_of(stream(api, job["id"]))
        assert events[-1]["event"] == "error"
        assert events[-1]["data"] == {"code": "upstream_unavailable", "message": "Model down."}
        assert [event["id"] for event in events] == list(range(1, len(events) + 1))
        assert "done" not in {event["event"] for event in events}

    def test_heartbeat_while_nothing_happens(self, make_api):
        api = make_api(job_seconds=30, sse_heartbeat=0.05)
        job = api.generate()
        with stream(api, job["id"]) as response:
            items = iter_sse(response)
            assert next(items)["id"] == 1
            assert next(items) == {"comment": "ping"}
            assert next(items) == {"comment": "ping"}
            api.server.finish_job(job["id"])
            rest = [item for item in items if "event" in item]
        assert rest[-1]["event"] == "done"
        assert rest[-1]["id"] == 18

    def test_reset_ends_open_streams(self, make_api):
        api = make_api(job_seconds=30)
        job = api.generate()
        with stream(api, job["id"]) as response:
            items = iter_sse(response)
            next(items)
            api.server.reset()
            assert list(items) == []

"""Jobs: the timeline read from the clock, completion, cancellation, and the test hooks."""

from __future__ import annotations

import itertools
import re

import pytest

from tests.sandbox.support import CREATED, make_job


class TestTimeline:
    """The timeline itself, read at chosen instants (no waiting, no threads)."""

    def test_pending_then_processing_then_completed(self):
        job = make_job()
        start = job.knots[0]
        assert 0.5 <= start <= 1.5
        assert job.to_json(CREATED)["status"] == "pending"
        assert job.to_json(CREATED + start - 0.01)["progress"] == 0
        processing = job.to_json(CREATED + start)
        assert processing["status"] == "processing"
        assert [s["name"] for s in processing["steps"] if s["active"]] == ["compose"]
        assert job.to_json(CREATED + 9.99)["progress"] == 99
        assert [s["name"] for s in job.to_json(CREATED + 9.99)["steps"] if s["active"]] == [
            "upscale"
        ]
        done = job.to_json(CREATED + 10)
        assert (done["status"], done["progress"]) == ("completed", 100)

    def test_progress_reaches_each_tenth_at_its_knot(self):
        job = make_job()
        readings = [job.to_json(CREATED + knot)["progress"] for knot in job.knots[:-1]]
        assert readings == [0, 10, 20, 30, 40, 50, 60, 70, 80, 90]

    def test_progress_is_not_linear_slow_at_both_ends(self):
        job = make_job(duration=100)
        tenths = [high - low for low, high in itertools.pairwise(job.knots)]
        middle = sum(tenths[2:8]) / 6
        assert tenths[0] > middle and tenths[-1] > middle
        readings = [job.to_json(CREATED + t)["progress"] for t in range(0, 100, 5)]
        assert readings == sorted(readings)
        assert len({b - a for a, b in itertools.pairwise(readings[3:])}) > 1

    def test_each_job_draws_its_own_pace_the_same_every_time(self):
        job = make_job()
        again = make_job()
        other = make_job()
        other.id = "job_111111111111"
        other.__post_init__()
        assert job.knots == again.knots
        assert job.knots != other.knots
        assert job.knots[-1] == other.knots[-1] == 10.0

    def test_steps_complete_in_order(self):
        job = make_job()
        third, two_thirds = job._offset_at(100 / 3), job._offset_at(200 / 3)
        completed = [
            [step["completed"] for step in job.to_json(CREATED + t)["steps"]]
            for t in (job.knots[0] + 0.01, third + 0.01, two_thirds + 0.01, 10)
        ]
        assert completed == [
            [False, False, False],
            [True, False, False],
            [True, True, False],
            [True, True, True],
        ]

    def test_completed_job_has_result_and_no_error(self):
        job = make_job().to_json(CREATED + 10)
        assert job["result"] == {
            "url": "http://cdn.test/hero.png",
            "key": "hero",
            "width": 1024,
            "height": 576,
        }
        assert "error" not in job

    def test_a_failing_job_fails_at_the_end_with_its_error(self):
        job = make_job()
        job.failure = {"code": "upstream_unavailable", "message": "Model down."}
        assert job.to_json(CREATED + 9)["status"] == "processing"
        failed = job.to_json(CREATED + 10)
        assert failed["status"] == "failed"
        assert failed["error"] == {"code": "upstream_unavailable", "message": "Model down."}
        assert failed["message"] == "Model down."
        assert "result" not in failed

    def test_a_cancelled_job_freezes_where_it_was(self):
        job = make_job()
        job.end("cancelled", CREATED + 5.5)
        later = job.to_json(CREATED + 100)
        assert later["status"] == "cancelled"
        assert later["progress"] == job.to_json(CREATED + 5.5)["progress"] > 0
        assert not any(step["active"] for step in later["steps"])
        assert "result" not in later and "error" not in later

    def test_updated_at_follows_the_last_event(self):
        job = make_job(duration=100)
        assert job.to_json(CREATED + 50)["updated_at"] == job.to_json(CREATED + 46)["updated_at"]
        assert job.to_json(CREATED + 50)["updated_at"] != job.to_json(CREATED + 5)["updated_at"]

    def test_the_first_answer_is_pending_even_for_zero_second_jobs(self):
        job = make_job(duration=0)
        assert job.initial_json()["status"] == "pending"
        assert job.to_json(CREATED)["status"] == "completed"


class TestJobsOverHttp:
    def test_unknown_job_is_404(self, api):
        response = api.get("/jobs/job_doesnotexist")
        assert response.status_code == 404
        assert response.json()["code"] == "not_found"

    def test_a_job_runs_to_completion_on_its_own(self, api):
        job = api.generate(key="hero.harbour")
        done = api.wait_for_status(job["id"], "completed")
        assert done["progress"] == 100
        assert all(step["completed"] and not step["active"] for step in done["steps"])
        assert re.fullmatch(
            re.escape(api.server.origin) + r"/cdn/prj_sandbox/hero\.harbour-[0-9a-f]{8}\.jpg",
            done["result"]["url"],
        )

    def test_pending_then_processing(self, make_api):
        api = make_api(job_seconds=2)
        job = api.generate()
        assert api.get(f"/jobs/{job['id']}").json()["status"] == "pending"
        processing = api.wait_for_status(job["id"], "processing")
        assert processing["steps"][0] == {"name": "compose", "completed": False, "active": True}
        assert 0 <= processing["progress"] < 100

    def test_zero_second_jobs_complete_on_first_read(self, make_api):
        api = make_api(job_seconds=0)
        job = api.generate()
        assert job["status"] == "pending"
        assert api.get(f"/jobs/{job['id']}").json()["status"] == "completed"

    def test_finish_job_completes_now(self, make_api):
        api = make_api(job_seconds=60)
        job = api.generate()
        finished = api.server.finish_job(job["id"])
        assert finished["status"] == "completed"
        assert api.get(f"/jobs/{job['id']}").json() == finished

    def test_finish_job_on_unknown_id_raises_key_error(self, sandbox):
        with pytest.raises(KeyError):
            sandbox.finish_job("job_nope")

    def test_server_jobs_shows_current_state(self, api):
        job = api.generate()
        assert api.server.jobs[job["id"]]["status"] in ("pending", "processing", "completed")
        api.server.finish_job(job["id"])
        assert api.server.jobs[job["id"]]["status"] == "completed"


class TestCancel:
    def test_cancel_a_running_job(self, make_api):
        api = make_api(job_seconds=60)
        job = api.generate(key="never")
        response = api.post(f"/jobs/{job['id']}/cancel")
        assert response.status_code == 200
        assert response.json()["status"] == "cancelled"
        assert api.get(f"/jobs/{job['id']}").json()["status"] == "cancelled"
        api.server.finish_job(job["id"])
        assert api.get(f"/jobs/{job['id']}").json()["status"] == "cancelled"
        assert api.get("/images/never").status_code == 404

    @pytest.mark.parametrize("first", ["cancel", "finish"])
    def test_cancelling_a_terminal_job_is_409(self, make_api, first):
        api = make_api(job_seconds=60)
        job = api.generate()
        if first == "cancel":
            api.post(f"/jobs/{job['id']}/cancel")
        else:
            api.server.finish_job(job["id"])
        response = api.post(f"/jobs/{job['id']}/cancel")
        assert response.status_code == 409
        assert response.json()["code"] == "conflict"

    def test_cancel_unknown_job_is_404(self, api):
        assert api.post("/jobs/job_nope/cancel").status_code == 404

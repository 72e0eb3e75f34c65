"""The ``/_sandbox/`` control endpoints, for clients that drive a sandbox over HTTP."""

from __future__ import annotations

import requests


def control(api, method: str, path: str, **kwargs) -> requests.Response:
    return requests.request(method, api.server.origin + "/_sandbox" + path, timeout=5, **kwargs)


class TestControl:
    def test_post_fault_needs_no_auth_and_takes_effect(self, api):
        response = control(
            api, "POST", "/faults", json={"kind": "status", "status": 503, "count": 1}
        )
        assert response.status_code == 201
        assert response.json()["kind"] == "status"
        assert response.json()["count"] == 1
        assert api.get("/projects/me").status_code == 503
        assert api.get("/projects/me").status_code == 200

    def test_post_fault_narrowed(self, api):
        control(
            api,
            "POST",
            "/faults",
            json={"kind": "status", "status": 500, "method": "GET", "path": "/v1/jobs"},
        )
        assert api.get("/projects/me").status_code == 200
        assert api.post("/jobs/job_x/cancel").status_code == 404
        assert api.get("/jobs/job_x").status_code == 500

    def test_post_fault_validates(self, api):
        response = control(api, "POST", "/faults", json={"kind": "status"})
        assert response.status_code == 422
        assert list(response.json()["errors"]) == ["status"]
        assert control(api, "POST", "/faults", json={"count": 1}).status_code == 422
        assert control(api, "POST", "/faults", data=b"nope").status_code == 400

    def test_delete_faults(self, api):
        api.server.set_fault("status", status=500)
        assert control(api, "DELETE", "/faults").status_code == 204
        assert api.get("/projects/me").status_code == 200

    def test_request_log(self, api):
        api.post("/images", json={"prompt": "x"}, params={"dry": "1"})
        control(api, "GET", "/requests")
        log = control(api, "GET", "/requests").json()["data"]
        assert len(log) == 1
        entry = log[0]
        assert entry["method"] == "POST"
        assert entry["path"] == "/v1/images"
        assert entry["query"] == {"dry": "1"}
        assert entry["json"] == {"prompt": "x"}
        assert entry["status"] == 202
        assert entry["headers"]["Authorization"].startswith("Bearer ndsk_test_")
        assert entry["request_id"].startswith("req_")

    def test_reset(self, api):
        api.generate()
        api.server.set_fault("status", status=500, path="/v1/jobs")
        assert control(api, "POST", "/reset").status_code == 204
        assert api.server.jobs == {}
        assert api.server.requests == []
        assert api.get("/jobs/job_any").status_code == 404

    def test_finish_job(self, make_api):
        api = make_api(job_seconds=60)
        job = api.generate()
        response = control(api, "POST", f"/jobs/{job['id']}/finish")
        assert response.status_code == 200
        assert response.json()["status"] == "completed"
        assert control(api, "POST", "/jobs/job_missing/finish").status_code == 404

    def test_unknown_and_wrong_method(self, api):
        assert control(api, "GET", "/nothing").status_code == 404
        wrong = control(api, "PUT", "/faults")
        assert wrong.status_code == 405
        assert wrong.json()["code"] == "bad_request"

    def test_control_calls_are_not_logged(self, api):
        control(api, "GET", "/requests")
        control(api, "DELETE", "/faults")
        assert api.server.requests == []

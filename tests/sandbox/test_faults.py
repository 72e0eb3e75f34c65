"""Fault injection: every kind, how count/method/path narrow it, and its validation."""

from __future__ import annotations

import io
import struct
import time

import pytest
import requests
from PIL import Image, UnidentifiedImageError

from django_neuraldraft.sandbox.faults import parse_spec


class TestRequestFaults:
    def test_latency_delays_matching_requests(self, api):
        api.server.set_fault("latency", seconds=0.2, count=1)
        started = time.perf_counter()
        assert api.get("/projects/me").status_code == 200
        assert time.perf_counter() - started >= 0.2
        started = time.perf_counter()
        api.get("/projects/me")
        assert time.perf_counter() - started < 0.2

    def test_status_answers_a_problem_instead(self, api):
        api.server.set_fault("status", status=503, count=2)
        responses = [api.get("/projects/me") for _ in range(3)]
        assert [r.status_code for r in responses] == [503, 503, 200]
        problem = responses[0].json()
        assert problem["code"] == "service_unavailable"
        assert problem["instance"] == responses[0].headers["X-Request-Id"]
        assert responses[0].headers["Content-Type"] == "application/problem+json"
        assert "X-RateLimit-Limit" in responses[0].headers

    @pytest.mark.parametrize(
        ("status", "code"),
        [
            (500, "internal_error"),
            (502, "bad_gateway"),
            (403, "forbidden"),
            (402, "insufficient_credits"),
        ],
    )
    def test_status_picks_the_catalog_code(self, api, status, code):
        api.server.set_fault("status", status=status, count=1)
        assert api.get("/projects/me").json()["code"] == code

    def test_status_with_an_explicit_code(self, api):
        api.server.set_fault("status", status=402, code="out_of_credits", count=1)
        response = api.post("/images", json={"prompt": "x"})
        assert response.status_code == 402
        assert response.json()["code"] == "out_of_credits"
        assert api.server.jobs == {}

    def test_status_with_a_hostile_detail_and_request_id(self, api):
        api.server.set_fault(
            "status", status=500, detail="\x1b[2J", request_id="r\u00e9q", count=1
        )
        response = api.get("/projects/me")
        assert response.json()["detail"] == "\x1b[2J"
        assert response.headers["X-Request-Id"].encode("latin-1").decode() == "r\u00e9q"

    @pytest.mark.parametrize("into", ["detail", "headers", "job"])
    def test_echo_authorization_repeats_the_key(self, api, into):
        api.server.set_fault("echo_authorization", into=into, count=1)
        response = api.get("/jobs/job_1")
        key = api.session.headers["Authorization"]
        assert key in response.text + str(response.headers)
        assert response.status_code == (200 if into == "job" else 401)

    def test_slow_body_trickles_a_whole_png(self, api):
        job = api.completed()
        api.server.set_fault("slow_body", bytes=40, interval=0.01, count=1)
        response = api.session.get(job["result"]["url"], timeout=5)
        assert response.content.startswith(b"\x89PNG") and len(response.content) == 72

    def test_gzip_bomb_is_gzip_whatever_was_asked(self, api):
        api.server.set_fault("gzip_bomb", bytes=5_000_000, count=1)
        response = api.get("/projects/me", headers={"Accept-Encoding": "identity"})
        assert response.headers["Content-Encoding"] == "gzip"
        assert response.content == b"\0" * 5_000_000

    def test_huge_body_nested(self, api):
        fault = api.server.set_fault("huge_body", bytes=10, shape="nested", count=1)
        assert api.get("/projects/me").content == b"[[[[[]]]]]"
        assert fault.served == 10

    def test_status_422_still_has_an_errors_map(self, api):
        api.server.set_fault("status", status=422, count=1)
        assert api.get("/projects/me").json()["errors"] == {}

    def test_answer_fields_spoil_a_success_answer(self, api):
        job_id = api.post("/images", json={"prompt": "x"}).json()["id"]
        api.server.set_fault(
            "answer_fields", count=1, path="/v1/jobs/", fields={"status": "queued", "progress": -1}
        )
        spoiled = api.get(f"/jobs/{job_id}").json()
        assert (spoiled["id"], spoiled["status"], spoiled["progress"]) == (job_id, "queued", -1)
        assert api.get(f"/jobs/{job_id}").json()["status"] != "queued"

    def test_answer_body_replaces_a_success_body(self, api):
        api.server.set_fault("answer_body", count=1, body="<html>proxy</html>")
        response = api.get("/projects/me")
        assert (response.status_code, response.text) == (200, "<html>proxy</html>")

    def test_answer_faults_leave_error_answers_alone(self, api):
        api.server.set_fault("answer_body", body="<html>proxy</html>")
        assert api.get("/jobs/job_unknown").json()["code"] == "not_found"

    def test_method_and_path_narrow_a_fault(self, api):
        api.server.set_fault("status", status=500, method="post", path="/v1/images")
        assert api.get("/projects/me").status_code == 200
        assert api.get("/images/missing").status_code == 404
        assert api.post("/images", json={"prompt": "x"}).status_code == 500
        assert api.post("/images", json={"prompt": "x"}).status_code == 500
        api.server.clear_faults()
        assert api.post("/images", json={"prompt": "x"}).status_code == 202

    def test_rate_limit_answers_429(self, api):
        api.server.set_fault("rate_limit", retry_after=7, count=1)
        response = api.get("/projects/me")
        assert response.status_code == 429
        assert response.headers["Retry-After"] == "7"
        assert response.json()["code"] == "rate_limited"
        assert api.get("/projects/me").status_code == 200

    def test_rate_limit_defaults_to_one_second(self, api):
        api.server.set_fault("rate_limit", count=1)
        assert api.get("/projects/me").headers["Retry-After"] == "1"

    def test_drop_response_handles_then_hangs_up(self, api):
        api.server.set_fault("drop_response", count=1, path="/v1/images")
        with pytest.raises(requests.ConnectionError):
            api.post("/images", json={"prompt": "x"})
        assert len(api.server.jobs) == 1
        assert api.server.last_request("POST", "/v1/images").status is None
        assert api.post("/images", json={"prompt": "y"}).status_code == 202

    def test_faults_also_hit_the_cdn(self, api):
        url = api.completed()["result"]["url"]
        api.server.set_fault("status", status=503, count=1, path="/cdn/")
        assert api.session.get(url, timeout=5).status_code == 503
        assert api.session.get(url, timeout=5).status_code == 200

    def test_control_endpoints_are_never_faulted(self, api):
        api.server.set_fault("status", status=500)
        response = api.session.get(api.server.origin + "/_sandbox/requests", timeout=5)
        assert response.status_code == 200


class TestJobFaults:
    def test_job_failure_makes_jobs_fail(self, api):
        api.server.set_fault("job_failure", count=1)
        failing = api.generate(key="broken")
        assert failing["status"] == "pending"
        working = api.generate()
        failed = api.wait_for_status(failing["id"], "failed")
        assert failed["error"]["code"] == "upstream_unavailable"
        assert failed["error"]["message"]
        assert "result" not in failed
        assert api.wait_for_status(working["id"], "completed")
        assert api.get("/images/broken").status_code == 404

    def test_job_failure_with_code_and_message(self, api):
        api.server.set_fault("job_failure", code="content_policy", message="Refused.")
        job = api.generate()
        assert api.server.finish_job(job["id"])["error"] == {
            "code": "content_policy",
            "message": "Refused.",
        }

    def test_result_url_replaces_the_reported_url(self, api):
        api.server.set_fault("result_url", url="http://10.0.0.1/private.png", count=1)
        first = api.completed(key="hero")
        second = api.completed()
        assert first["result"]["url"] == "http://10.0.0.1/private.png"
        assert api.get("/images/hero").json()["url"] == "http://10.0.0.1/private.png"
        assert second["result"]["url"].startswith(api.server.origin)


class TestCdnFaults:
    def test_corrupt_image(self, api):
        url = api.completed()["result"]["url"]
        api.server.set_fault("corrupt_image", count=1)
        response = api.session.get(url, timeout=5)
        assert response.headers["Content-Type"] == "image/png"
        with pytest.raises((UnidentifiedImageError, OSError, SyntaxError)):
            Image.open(io.BytesIO(response.content)).load()

    def test_oversized_image_by_dimensions(self, api):
        api.server.set_fault("oversized_image", width=6000, height=5000, count=1)
        response = api.session.get(api.server.origin + "/cdn/prj_sandbox/any.png", timeout=5)
        assert response.headers["Content-Type"] == "image/png"
        assert Image.open(io.BytesIO(response.content)).size == (6000, 5000)

    def test_oversized_image_beyond_pillows_bomb_limit(self, api):
        api.server.set_fault("oversized_image", width=20000, height=20000, count=1)
        data = api.session.get(api.server.origin + "/cdn/prj_sandbox/any.png", timeout=10).content
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        assert struct.unpack(">II", data[16:24]) == (20000, 20000)
        assert len(data) < 1_000_000

    def test_oversized_image_by_bytes(self, api):
        api.server.set_fault("oversized_image", bytes=3_000_000, count=1)
        response = api.session.get(api.server.origin + "/cdn/prj_sandbox/any.png", timeout=5)
        assert int(response.headers["Content-Length"]) >= 3_000_000
        image = Image.open(io.BytesIO(response.content))
        image.load()
        assert image.size == (8, 8)

    def test_wrong_content_type(self, api):
        url = api.completed()["result"]["url"]
        api.server.set_fault("wrong_content_type", count=1)
        response = api.session.get(url, timeout=5)
        assert response.headers["Content-Type"].startswith("text/html")
        assert b"<html" in response.content
        assert api.session.get(url, timeout=5).headers["Content-Type"] == "image/jpeg"

    def test_cdn_faults_are_not_used_up_by_api_calls(self, api):
        api.server.set_fault("corrupt_image", count=1)
        job = api.completed()
        api.get("/projects/me")
        response = api.session.get(job["result"]["url"], timeout=5)
        assert response.content.startswith(b"\x89PNG") and b"not image data" in response.content


class TestValidation:
    @pytest.mark.parametrize(
        ("kind", "options", "message"),
        [
            ("explode", {}, "Unknown fault kind"),
            ("latency", {}, "seconds"),
            ("latency", {"seconds": -1}, "negative"),
            ("status", {"status": 200}, "error status"),
            ("status", {"status": "503"}, "int"),
            ("rate_limit", {"wait": 3}, "no parameter"),
            ("oversized_image", {"width": 10}, "width= and height="),
            ("oversized_image", {"width": 10, "height": 10, "bytes": 5}, "width= and height="),
            ("result_url", {}, "url"),
            ("huge_body", {"bytes": 9, "shape": "round"}, "shape is one of"),
            ("slow_body", {"interval": 0}, "must be positive"),
            ("echo_authorization", {"into": "body"}, "into is one of"),
            ("status", {"status": 500, "request_id": "a\nb"}, "line break"),
            ("drop_response", {"count": 0}, "count"),
            ("drop_response", {"path": "v1"}, "path"),
        ],
    )
    def test_bad_faults_raise_value_error(self, sandbox, kind, options, message):
        with pytest.raises(ValueError, match=message):
            sandbox.set_fault(kind, **options)

    def test_set_fault_returns_the_fault(self, sandbox):
        fault = sandbox.set_fault("latency", seconds=1, count=2, method="get", path="/v1/")
        assert fault.to_json() == {
            "id": fault.id,
            "kind": "latency",
            "count": 2,
            "method": "GET",
            "path": "/v1/",
            "seconds": 1.0,
        }

    def test_reset_clears_faults(self, api):
        api.server.set_fault("status", status=500)
        api.server.reset()
        assert api.get("/projects/me").status_code == 200

    @pytest.mark.parametrize(
        ("spec", "parsed"),
        [
            ("drop_response", ("drop_response", {})),
            ("status:status=503,count=2", ("status", {"status": 503, "count": 2})),
            (
                "latency:seconds=0.5,path=/v1/jobs",
                ("latency", {"seconds": 0.5, "path": "/v1/jobs"}),
            ),
            (
                "result_url:url=http://10.0.0.1:8080/x.png",
                ("result_url", {"url": "http://10.0.0.1:8080/x.png"}),
            ),
            ("status:status=503,code=none", ("status", {"status": 503, "code": None})),
        ],
    )
    def test_command_line_specs(self, spec, parsed):
        assert parse_spec(spec) == parsed

    def test_malformed_spec(self):
        with pytest.raises(ValueError, match="name=value"):
            parse_spec("status:503")

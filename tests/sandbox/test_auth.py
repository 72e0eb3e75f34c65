"""Authentication, request ids, problem documents and rate-limit headers on every answer."""

from __future__ import annotations

import re

import pytest
import requests

from django_neuraldraft.client.credentials import API_KEY_PATTERN
from django_neuraldraft.sandbox import SANDBOX_API_KEY
from django_neuraldraft.testing import SANDBOX_API_KEY as TESTING_KEY
from tests.sandbox.support import REQUEST_ID, Api


class TestAuthentication:
    def test_sandbox_key_is_a_test_key(self):
        match = API_KEY_PATTERN.fullmatch(SANDBOX_API_KEY)
        assert match is not None and match["env"] == "test"
        assert TESTING_KEY == SANDBOX_API_KEY

    def test_missing_key_is_a_401_problem_document(self, sandbox):
        response = requests.get(sandbox.base_url + "/projects/me", timeout=5)
        assert response.status_code == 401
        assert response.headers["Content-Type"] == "application/problem+json"
        problem = response.json()
        assert problem == {
            "type": "https://api.neuraldraft.io/errors/unauthorized",
            "title": "Unauthorized",
            "status": 401,
            "code": "unauthorized",
            "detail": problem["detail"],
            "instance": response.headers["X-Request-Id"],
        }
        assert "errors" not in problem

    @pytest.mark.parametrize(
        "authorization",
        [
            f"Token {SANDBOX_API_KEY}",
            "Bearer ",
            "Bearer ndsk_test_short",
            "Bearer " + "ndsk_test_" + "!" * 32,
            "Bearer ndsk_live_" + "L" * 32,
            SANDBOX_API_KEY,
        ],
        ids=["wrong-scheme", "empty", "short", "not-base62", "live-key", "no-scheme"],
    )
    def test_refused_keys(self, sandbox, authorization):
        response = requests.get(
            sandbox.base_url + "/projects/me", headers={"Authorization": authorization}, timeout=5
        )
        assert response.status_code == 401
        assert response.json()["code"] == "unauthorized"

    def test_live_key_refusal_says_why(self, sandbox):
        response = Api(sandbox, key="ndsk_live_" + "L" * 32).get("/projects/me")
        assert "live" in response.json()["detail"]

    def test_any_well_formed_test_key_is_accepted(self, sandbox):
        response = Api(sandbox, key="ndsk_test_" + "T" * 32).get("/projects/me")
        assert response.status_code == 200

    def test_scheme_is_case_insensitive(self, sandbox):
        response = requests.get(
            sandbox.base_url + "/projects/me",
            headers={"Authorization": f"bearer {SANDBOX_API_KEY}"},
            timeout=5,
        )
        assert response.status_code == 200


class TestCommonHeaders:
    @pytest.mark.parametrize(
        "path",
        ["/v1/projects/me", "/v1/nowhere", "/cdn/prj_sandbox/none.png", "/", "/_sandbox/requests"],
    )
    def test_every_response_has_a_request_id(self, api, path):
        response = api.session.get(api.server.origin + path, timeout=5)
        assert re.fullmatch(REQUEST_ID, response.headers["X-Request-Id"])

    def test_request_ids_differ(self, api):
        ids = {api.get("/projects/me").headers["X-Request-Id"] for _ in range(5)}
        assert len(ids) == 5

    def test_api_responses_carry_rate_limit_headers(self, api):
        for response in (
            api.get("/projects/me"),
            api.get("/jobs/job_missing"),
            Api(api.server, None).get("/projects/me"),
        ):
            assert int(response.headers["X-RateLimit-Limit"]) == 2000
            assert 0 <= int(response.headers["X-RateLimit-Remaining"]) <= 2000
            assert response.headers["X-RateLimit-Reset"].isdigit()

    def test_cdn_and_control_responses_do_not(self, api):
        for path in ("/cdn/prj_sandbox/none.png", "/_sandbox/requests"):
            response = api.session.get(api.server.origin + path, timeout=5)
            assert "X-RateLimit-Limit" not in response.headers

    def test_unknown_api_path_is_404_not_found(self, api):
        response = api.get("/galleries/home")
        assert response.status_code == 404
        assert response.json()["code"] == "not_found"

    def test_wrong_method_is_405_with_allow(self, api):
        response = api.request("DELETE", "/images/hero")
        assert response.status_code == 405
        assert response.headers["Allow"] == "GET, PUT"
        assert response.json()["code"] == "bad_request"
        assert response.json()["status"] == 405

    def test_paths_outside_the_api_are_404(self, sandbox):
        response = requests.get(sandbox.origin + "/", timeout=5)
        assert response.status_code == 404
        assert response.headers["Content-Type"] == "application/problem+json"

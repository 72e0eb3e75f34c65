"""The per-project token bucket: headers, 429 with Retry-After, and what does not count."""

from __future__ import annotations

import time

import pytest

from tests.sandbox.support import Api, wait_until


class TestRateLimit:
    def test_bucket_drains_then_429(self, make_api):
        api = make_api(rate_limit=60, rate_burst=3)
        remaining = [
            int(api.get("/projects/me").headers["X-RateLimit-Remaining"]) for _ in range(3)
        ]
        assert remaining == [2, 1, 0]
        response = api.get("/projects/me")
        assert response.status_code == 429
        assert response.headers["Content-Type"] == "application/problem+json"
        problem = response.json()
        assert problem["code"] == "rate_limited"
        assert problem["type"] == "https://api.neuraldraft.io/errors/rate_limited"
        assert response.headers["Retry-After"] == "1"
        assert response.headers["X-RateLimit-Limit"] == "3"
        assert response.headers["X-RateLimit-Remaining"] == "0"
        assert int(response.headers["X-RateLimit-Reset"]) >= int(time.time())

    def test_retry_after_reflects_the_refill_rate(self, make_api):
        api = make_api(rate_limit=6, rate_burst=1)
        api.get("/projects/me")
        response = api.get("/projects/me")
        assert response.status_code == 429
        assert 1 <= int(response.headers["Retry-After"]) <= 10

    def test_tokens_refill(self, make_api):
        api = make_api(rate_limit=1200, rate_burst=1)
        api.get("/projects/me")
        assert api.get("/projects/me").status_code == 429
        wait_until(lambda: api.get("/projects/me").status_code == 200, timeout=2)

    def test_writes_and_reads_count_the_same(self, make_api):
        api = make_api(rate_limit=60, rate_burst=2)
        api.generate()
        api.get("/projects/me")
        assert api.post("/images", json={"prompt": "x"}).status_code == 429

    def test_cdn_control_and_refused_keys_do_not_count(self, make_api):
        api = make_api(rate_limit=60, rate_burst=3, job_seconds=0)
        url = api.completed()["result"]["url"]  # two tokens: the POST and the GET
        for _ in range(5):
            assert api.session.get(url, timeout=5).status_code == 200
            assert api.session.get(api.server.origin + "/_sandbox/requests", timeout=5).ok
            assert Api(api.server, key=None).get("/projects/me").status_code == 401
        response = api.get("/projects/me")
        assert response.status_code == 200
        assert response.headers["X-RateLimit-Remaining"] == "0"

    def test_reset_refills_the_bucket(self, make_api):
        api = make_api(rate_limit=60, rate_burst=1)
        api.get("/projects/me")
        api.server.reset()
        assert api.get("/projects/me").status_code == 200

    def test_limit_off(self, make_api):
        api = make_api(rate_limit=None)
        responses = [api.get("/projects/me") for _ in range(30)]
        assert all(response.status_code == 200 for response in responses)
        assert "X-RateLimit-Limit" not in responses[-1].headers

    def test_burst_defaults_to_twice_the_limit(self, make_api):
        api = make_api(rate_limit=30)
        assert api.get("/projects/me").headers["X-RateLimit-Limit"] == "60"

    @pytest.mark.parametrize("options", [{"rate_limit": 0}, {"rate_limit": 10, "rate_burst": 0}])
    def test_bad_limits_are_refused(self, make_server, options):
        with pytest.raises(ValueError, match="rate_"):
            make_server(**options)

"""Idempotency-Key: replays, conflicts, and concurrent duplicates that must make one job."""

from __future__ import annotations

import threading

import pytest
import requests

BODY = {"prompt": "A windmill", "key": "hero.windmill"}


class TestReplay:
    def test_a_replay_answers_the_first_response(self, api):
        headers = {"Idempotency-Key": "order-42"}
        first = api.post("/images", json=BODY, headers=headers)
        second = api.post("/images", json=BODY, headers=headers)
        assert first.status_code == second.status_code == 202
        assert second.content == first.content
        assert "Idempotent-Replayed" not in first.headers
        assert second.headers["Idempotent-Replayed"] == "true"
        assert second.headers["X-Request-Id"] != first.headers["X-Request-Id"]
        assert len(api.server.jobs) == 1
        assert api.get("/projects/me").json()["credits"] == 1_000_000 - 40

    def test_without_a_key_every_post_is_new(self, api):
        api.post("/images", json=BODY)
        api.post("/images", json=BODY)
        assert len(api.server.jobs) == 2

    def test_validation_failures_are_replayed_too(self, api):
        headers = {"Idempotency-Key": "bad-once"}
        first = api.post("/images", json={"prompt": ""}, headers=headers)
        second = api.post("/images", json={"prompt": ""}, headers=headers)
        assert first.status_code == second.status_code == 422
        assert second.content == first.content
        assert second.headers["Idempotent-Replayed"] == "true"

    def test_regenerate_is_idempotent(self, api):
        headers = {"Idempotency-Key": "regen-1"}
        body = {"regenerate": True, "prompt": "Winter"}
        first = api.put("/images/hero", json=body, headers=headers)
        second = api.put("/images/hero", json=body, headers=headers)
        assert first.status_code == 202
        assert second.json()["id"] == first.json()["id"]
        assert len(api.server.jobs) == 1

    def test_a_dropped_answer_can_be_fetched_by_retrying(self, api):
        api.server.set_fault("drop_response", count=1, path="/v1/images")
        headers = {"Idempotency-Key": "lost-answer"}
        with pytest.raises(requests.ConnectionError):
            api.post("/images", json=BODY, headers=headers)
        retry = api.post("/images", json=BODY, headers=headers)
        assert retry.status_code == 202
        assert retry.headers["Idempotent-Replayed"] == "true"
        assert list(api.server.jobs) == [retry.json()["id"]]

    def test_a_server_error_frees_the_key(self, api):
        api.server.set_fault("status", status=503, count=1, path="/v1/images")
        headers = {"Idempotency-Key": "after-outage"}
        assert api.post("/images", json=BODY, headers=headers).status_code == 503
        retry = api.post("/images", json=BODY, headers=headers)
        assert retry.status_code == 202
        assert "Idempotent-Replayed" not in retry.headers


class TestConflict:
    def test_same_key_different_body_is_409(self, api):
        headers = {"Idempotency-Key": "order-43"}
        api.post("/images", json=BODY, headers=headers)
        response = api.post("/images", json={**BODY, "prompt": "Another"}, headers=headers)
        assert response.status_code == 409
        assert response.json()["code"] == "idempotency_conflict"
        assert len(api.server.jobs) == 1

    def test_same_key_different_path_is_409(self, api):
        headers = {"Idempotency-Key": "order-44"}
        api.post("/images", json=BODY, headers=headers)
        response = api.put(
            "/images/hero", json={"regenerate": True, "prompt": "x"}, headers=headers
        )
        assert response.json()["code"] == "idempotency_conflict"

    @pytest.mark.parametrize(("length", "status"), [(0, 400), (255, 202), (256, 400)])
    def test_key_length(self, api, length, status):
        response = api.post("/images", json=BODY, headers={"Idempotency-Key": "k" * length})
        assert response.status_code == status

    def test_reset_forgets_keys(self, api):
        headers = {"Idempotency-Key": "order-45"}
        api.post("/images", json=BODY, headers=headers)
        api.server.reset()
        response = api.post("/images", json={"prompt": "Different"}, headers=headers)
        assert response.status_code == 202
        assert "Idempotent-Replayed" not in response.headers


class TestConcurrency:
    def test_concurrent_duplicates_make_one_job(self, api):
        # Latency holds the first request in flight while the others arrive.
        api.server.set_fault("latency", seconds=0.1, count=1, path="/v1/images")
        threads_count = 8
        barrier = threading.Barrier(threads_count)
        responses: list[requests.Response] = []
        lock = threading.Lock()

        def send() -> None:
            session = requests.Session()
            session.headers.update(api.session.headers)
            barrier.wait()
            response = session.post(
                api.server.base_url + "/images",
                json=BODY,
                headers={"Idempotency-Key": "burst"},
                timeout=10,
            )
            with lock:
                responses.append(response)

        threads = [threading.Thread(target=send) for _ in range(threads_count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(api.server.jobs) == 1
        assert {response.status_code for response in responses} == {202}
        assert len({response.json()["id"] for response in responses}) == 1
        originals = [r for r in responses if "Idempotent-Replayed" not in r.headers]
        assert len(originals) == 1

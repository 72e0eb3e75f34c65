"""Webhook endpoints, signed deliveries on job completion, retries, and the deliveries list."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import socket
import time

import pytest

from tests.sandbox.support import Api, WebhookReceiver, wait_until

TIMESTAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"


def create_endpoint(api: Api, url: str, **fields) -> dict:
    response = api.post(
        "/webhook-endpoints", json={"url": url, "events": ["image.generated"], **fields}
    )
    assert response.status_code == 201, response.text
    return response.json()


def verify(secret: str, header: str, body: bytes) -> bool:
    parts = dict(item.split("=", 1) for item in header.split(","))
    expected = hmac.new(secret.encode(), f"{parts['t']}.".encode() + body, hashlib.sha256)
    return hmac.compare_digest(expected.hexdigest(), parts["v1"])


def delivered(api: Api, count: int = 1, status: str = "success", timeout: float = 5.0):
    def check():
        deliveries = api.server.deliveries
        done = [d for d in deliveries if d.status == status]
        return deliveries if len(done) >= count else None

    return wait_until(check, timeout=timeout)


class TestEndpoints:
    def test_create_answers_201_with_the_secret(self, api):
        response = api.post(
            "/webhook-endpoints",
            json={"url": "https://example.com/hooks", "events": ["image.generated"]},
        )
        assert response.status_code == 201
        endpoint = response.json()
        assert re.fullmatch(r"whe_[0-9A-Za-z]{12}", endpoint["id"])
        assert re.fullmatch(r"whsec_[0-9A-Za-z]{32}", endpoint["signing_secret"])
        assert endpoint["url"] == "https://example.com/hooks"
        assert endpoint["events"] == ["image.generated"]
        assert endpoint["is_active"] is True
        assert endpoint["last_delivery_status"] is None
        assert endpoint["last_delivery_at"] is None
        assert re.fullmatch(TIMESTAMP, endpoint["created_at"])

    @pytest.mark.parametrize(
        ("body", "fields"),
        [
            ({}, {"url", "events"}),
            ({"url": "ftp://example.com", "events": ["image.generated"]}, {"url"}),
            ({"url": "/relative", "events": ["image.generated"]}, {"url"}),
            ({"url": "http://example.com:99999/", "events": ["image.generated"]}, {"url"}),
            ({"url": "https://example.com", "events": []}, {"events"}),
            ({"url": "https://example.com", "events": "image.generated"}, {"events"}),
            ({"url": "https://example.com", "events": ["image.exploded"]}, {"events"}),
            (
                {"url": "https://example.com", "events": ["image.generated"], "is_active": "yes"},
                {"is_active"},
            ),
        ],
    )
    def test_create_validates(self, api, body, fields):
        response = api.post("/webhook-endpoints", json=body)
        assert response.status_code == 422
        assert set(response.json()["errors"]) == fields

    def test_patch_is_partial_and_hides_the_secret(self, api):
        endpoint = create_endpoint(api, "https://example.com/hooks")
        response = api.patch(f"/webhook-endpoints/{endpoint['id']}", json={"is_active": False})
        assert response.status_code == 200
        updated = response.json()
        assert updated["is_active"] is False
        assert updated["url"] == "https://example.com/hooks"
        assert "signing_secret" not in updated
        events = ["image.generated", "content.changed"]
        assert (
            api.patch(f"/webhook-endpoints/{endpoint['id']}", json={"events": events}).json()[
                "events"
            ]
            == events
        )

    def test_patch_validates_and_404s(self, api):
        endpoint = create_endpoint(api, "https://example.com/hooks")
        bad = api.patch(f"/webhook-endpoints/{endpoint['id']}", json={"events": []})
        assert bad.status_code == 422
        assert api.patch("/webhook-endpoints/whe_missing", json={}).status_code == 404


class TestDelivery:
    def test_completion_posts_a_signed_event(self, api, receiver):
        endpoint = create_endpoint(api, receiver.url)
        job = api.generate(key="hero.harbour")
        (hook,) = receiver.wait_for(1)
        deliveries = delivered(api)
        event = json.loads(hook.body)
        result = api.get(f"/jobs/{job['id']}").json()["result"]
        assert re.fullmatch(r"evt_[0-9A-Za-z]{12}", event["id"])
        assert event["type"] == "image.generated"
        assert re.fullmatch(TIMESTAMP, event["created_at"])
        assert event["data"] == {"job_id": job["id"], **result}
        assert hook.headers["Content-Type"] == "application/json"
        assert hook.headers["X-Neural-Draft-Event"] == "image.generated"
        assert hook.headers["X-Neural-Draft-Delivery"] == deliveries[0].id
        assert re.fullmatch(r"whd_[0-9A-Za-z]{12}", deliveries[0].id)
        signature = hook.headers["X-Neural-Draft-Signature"]
        assert re.fullmatch(r"t=\d+,v1=[0-9a-f]{64}", signature)
        assert abs(int(signature[2:].split(",")[0]) - time.time()) < 60
        assert verify(endpoint["signing_secret"], signature, hook.body)
        assert not verify(endpoint["signing_secret"], signature, hook.body + b" ")

    def test_delivery_is_recorded(self, api, receiver):
        endpoint = create_endpoint(api, receiver.url)
        api.generate()
        (delivery,) = delivered(api)
        assert delivery.endpoint_id == endpoint["id"]
        assert delivery.event == "image.generated"
        assert delivery.attempts == 1
        assert delivery.response_status == 200
        assert delivery.response_body == '{"received": true}'
        assert delivery.delivered_at is not None
        after = api.patch(f"/webhook-endpoints/{endpoint['id']}", json={}).json()
        assert after["last_delivery_status"] == "success"
        assert re.fullmatch(TIMESTAMP, after["last_delivery_at"])

    def test_fires_without_anyone_polling(self, api, receiver):
        create_endpoint(api, receiver.url)
        job = api.generate()
        (hook,) = receiver.wait_for(1)
        assert json.loads(hook.body)["data"]["job_id"] == job["id"]

    def test_only_active_subscribers_receive(self, api, receiver):
        other = WebhookReceiver()
        inactive = WebhookReceiver()
        try:
            create_endpoint(api, receiver.url)
            api.post("/webhook-endpoints", json={"url": other.url, "events": ["content.changed"]})
            create_endpoint(api, inactive.url, is_active=False)
            api.completed()
            receiver.wait_for(1)
            delivered(api)
            assert other.received == [] and inactive.received == []
            assert len(api.server.deliveries) == 1
        finally:
            other.close()
            inactive.close()

    def test_every_subscriber_gets_the_same_event(self, api, receiver):
        second = WebhookReceiver()
        try:
            create_endpoint(api, receiver.url)
            create_endpoint(api, second.url)
            api.completed()
            (first_hook,) = receiver.wait_for(1)
            (second_hook,) = second.wait_for(1)
            assert first_hook.body == second_hook.body
            assert (
                first_hook.headers["X-Neural-Draft-Delivery"]
                != second_hook.headers["X-Neural-Draft-Delivery"]
            )
        finally:
            second.close()

    def test_failed_and_cancelled_jobs_send_nothing(self, make_api, receiver):
        api = make_api(job_seconds=30)
        create_endpoint(api, receiver.url)
        api.server.set_fault("job_failure", count=1)
        failing = api.generate()
        api.server.finish_job(failing["id"])
        cancelled = api.generate()
        api.post(f"/jobs/{cancelled['id']}/cancel")
        marker = api.generate()
        api.server.finish_job(marker["id"])
        (hook,) = receiver.wait_for(1)
        assert json.loads(hook.body)["data"]["job_id"] == marker["id"]
        assert len(api.server.deliveries) == 1


class TestRetries:
    def test_non_2xx_is_retried_on_the_scaled_schedule(self, make_api, receiver):
        api = make_api(job_seconds=0, webhook_retry_scale=0.001)
        receiver.statuses[:] = [500, 503]
        create_endpoint(api, receiver.url)
        api.completed()
        hooks = receiver.wait_for(3)
        (delivery,) = delivered(api)
        assert delivery.attempts == 3
        assert delivery.response_status == 200
        assert len({hook.body for hook in hooks}) == 1
        gaps = [
            b - a for a, b in zip(delivery.attempted_at, delivery.attempted_at[1:], strict=False)
        ]
        assert gaps[0] >= 0.03 * 0.9
        assert gaps[1] >= 0.12 * 0.9

    def test_gives_up_after_six_attempts(self, make_api, receiver):
        api = make_api(job_seconds=0, webhook_retry_scale=0.00001)
        receiver.statuses[:] = [500] * 10
        endpoint = create_endpoint(api, receiver.url)
        api.completed()
        (delivery,) = delivered(api, status="failed")
        assert delivery.attempts == 6
        assert delivery.response_status == 500
        assert delivery.next_retry_at is None
        assert len(receiver.received) == 6
        after = api.patch(f"/webhook-endpoints/{endpoint['id']}", json={}).json()
        assert after["last_delivery_status"] == "failed"

    def test_a_slow_receiver_times_out_and_is_retried(self, make_api, receiver):
        api = make_api(job_seconds=0, webhook_timeout=0.1, webhook_retry_scale=0.00001)
        receiver.delays[:] = [0.4]
        create_endpoint(api, receiver.url)
        api.completed()
        (delivery,) = delivered(api)
        assert delivery.attempts == 2

    def test_stop_does_not_wait_for_a_hung_receiver(self, make_server, receiver):
        server = make_server(job_seconds=0, webhook_timeout=30)
        api = Api(server)
        receiver.delays[:] = [5]
        create_endpoint(api, receiver.url)
        api.completed()
        receiver.wait_for(1)
        started = time.perf_counter()
        server.stop()
        assert time.perf_counter() - started < 2

    def test_an_unreachable_receiver_has_no_status(self, make_api):
        with socket.socket() as placeholder:
            placeholder.bind(("127.0.0.1", 0))
            port = placeholder.getsockname()[1]
        api = make_api(job_seconds=0, webhook_retry_scale=0.00001)
        create_endpoint(api, f"http://127.0.0.1:{port}/gone")
        api.completed()
        (delivery,) = delivered(api, status="failed")
        assert delivery.response_status is None
        assert delivery.attempts == 6


class TestDeliveriesApi:
    def test_list_is_paged_newest_first(self, api, receiver):
        create_endpoint(api, receiver.url)
        for _ in range(3):
            api.completed()
        delivered(api, count=3)
        response = api.get("/webhook-deliveries", params={"page_size": 2})
        assert response.status_code == 200
        page = response.json()
        assert page["meta"] == {"page": 1, "page_size": 2, "total": 3}
        assert len(page["data"]) == 2
        ids = [d.id for d in api.server.deliveries]
        assert [d["id"] for d in page["data"]] == ids[::-1][:2]
        second = api.get("/webhook-deliveries", params={"page_size": 2, "page": 2}).json()
        assert [d["id"] for d in second["data"]] == ids[:1]
        item = page["data"][0]
        assert set(item) == {
            "id",
            "endpoint_id",
            "event",
            "status",
            "attempts",
            "response_status",
            "response_body",
            "next_retry_at",
            "delivered_at",
            "created_at",
        }

    def test_filters(self, api, receiver):
        endpoint = create_endpoint(api, receiver.url)
        api.completed()
        delivered(api)
        query = {"endpoint_id": endpoint["id"], "status": "success", "event": "image.generated"}
        assert api.get("/webhook-deliveries", params=query).json()["meta"]["total"] == 1
        assert api.get("/webhook-deliveries", params={"status": "failed"}).json()["data"] == []
        assert api.get("/webhook-deliveries", params={"endpoint_id": "whe_x"}).json()["data"] == []

    @pytest.mark.parametrize(
        "query",
        [
            {"page": "0"},
            {"page_size": "101"},
            {"page_size": "x"},
            {"status": "done"},
            {"event": "x"},
        ],
    )
    def test_bad_queries_are_422(self, api, query):
        assert api.get("/webhook-deliveries", params=query).status_code == 422

    def test_manual_retry(self, make_api, receiver):
        api = make_api(job_seconds=0, webhook_retry_scale=0.00001)
        receiver.statuses[:] = [500] * 6
        create_endpoint(api, receiver.url)
        api.completed()
        (delivery,) = delivered(api, status="failed")
        response = api.post(f"/webhook-deliveries/{delivery.id}/retry")
        assert response.status_code == 202
        assert response.json()["status"] == "pending"
        (retried,) = delivered(api)
        assert retried.attempts == 7
        assert api.post("/webhook-deliveries/whd_missing/retry").status_code == 404

"""neuraldraft_webhook_register and neuraldraft_webhook_replay, through call_command."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command

from django_neuraldraft.choices import WebhookOutcome
from django_neuraldraft.models import ImageKey, Job, WebhookEvent

from .conftest import event_body

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


class TestRegister:
    URL = "https://example.com/neuraldraft/webhook/"

    def test_registers_and_prints_the_secret_once_with_where_to_put_it(
        self, neuraldraft_settings, sandbox
    ):
        output = run("neuraldraft_webhook_register", self.URL)
        (request,) = sandbox.assert_called("POST", "/v1/webhook-endpoints")
        assert request.json == {"url": self.URL, "events": ["image.generated"]}
        secret = next(word for word in output.split() if word.startswith("whsec_"))
        assert output.count(secret) == 1
        assert "NEURALDRAFT['WEBHOOK_SECRET']" in output
        assert not any(
            secret in json.dumps(list(model.objects.values()), default=str)
            for model in (ImageKey, Job, WebhookEvent)
        )

    def test_json_output(self, neuraldraft_settings, sandbox):
        printed = json.loads(run("neuraldraft_webhook_register", self.URL, "--json"))
        assert printed["url"] == self.URL
        assert printed["id"].startswith("whe_") and printed["signing_secret"].startswith("whsec_")

    @pytest.mark.parametrize(
        "url", ["example.com/hook", "ftp://example.com/hook", "http://example.com/hook"]
    )
    def test_a_bad_url_is_refused_before_anything_is_sent(
        self, neuraldraft_settings, sandbox, url
    ):
        with pytest.raises(CommandError, match="Give the full URL"):
            run("neuraldraft_webhook_register", url)
        assert sandbox.requests == []

    def test_http_is_accepted_on_loopback_for_local_work(self, neuraldraft_settings, sandbox):
        assert "Registered" in run("neuraldraft_webhook_register", "http://127.0.0.1:8000/h/")

    @pytest.mark.parametrize(
        "fields",
        [
            {"signing_secret": "whsec_abc\x1b]0;owned\x07"},
            {"signing_secret": "whsec_" + "a" * 5000},
            {"id": "we_1\x1b[2J"},
        ],
    )
    def test_an_answer_a_terminal_should_not_print_is_a_command_error(
        self, neuraldraft_settings, sandbox, fields
    ):
        sandbox.set_fault("answer_fields", fields=fields, count=1)
        out = io.StringIO()
        with pytest.raises(CommandError, match="not"):
            call_command("neuraldraft_webhook_register", self.URL, stdout=out)
        assert out.getvalue() == ""

    def test_the_url_printed_is_the_one_registered_not_the_answers(
        self, neuraldraft_settings, sandbox
    ):
        sandbox.set_fault("answer_fields", fields={"url": "https://evil.test/\x1b[2J"}, count=1)
        assert "evil" not in run("neuraldraft_webhook_register", self.URL)

    def test_an_api_refusal_is_a_command_error(self, neuraldraft_settings, sandbox):
        sandbox.set_fault("status", status=403, code="forbidden", count=1)
        with pytest.raises(CommandError, match="refused"):
            run("neuraldraft_webhook_register", self.URL)


class TestReplay:
    @pytest.fixture
    def failed(self, finished_job) -> WebhookEvent:
        return WebhookEvent.objects.create(
            event_id="evt_failedonce",
            event_type="image.generated",
            remote_job_id=finished_job.remote_id,
            verified=True,
            body=event_body(finished_job.remote_id).decode(),
            outcome=WebhookOutcome.FAILED,
            error="ServerError: 503",
        )

    def test_replays_one_by_number_and_binds_the_image(self, failed, sandbox):
        output = run("neuraldraft_webhook_replay", str(failed.pk))
        assert output.strip() == f"{failed.pk} evt_failedonce: processed"
        failed.refresh_from_db()
        assert (failed.outcome, failed.replays) == (WebhookOutcome.PROCESSED, 1)
        assert ImageKey.objects.get().current is not None

    def test_replays_one_by_event_id_as_json(self, failed, sandbox):
        printed = json.loads(run("neuraldraft_webhook_replay", "evt_failedonce", "--json"))
        assert printed == {
            "id": failed.pk,
            "event_id": "evt_failedonce",
            "outcome": "processed",
            "error": "",
        }

    def test_failed_replays_every_failed_delivery(self, failed, sandbox):
        assert "processed" in run("neuraldraft_webhook_replay", "--failed")
        assert run("neuraldraft_webhook_replay", "--failed").strip() == "No failed deliveries."

    def test_exits_1_when_a_delivery_fails_again(self, failed, sandbox):
        sandbox.set_fault("status", status=503, path=f"/v1/jobs/{failed.remote_job_id}")
        with pytest.raises(CommandError, match="failed again") as raised:
            run("neuraldraft_webhook_replay", "--failed")
        assert raised.value.returncode == 1
        failed.refresh_from_db()
        assert failed.outcome == WebhookOutcome.FAILED

    @pytest.mark.parametrize("args", [(), ("7", "--failed")])
    def test_one_id_or_failed_is_required(self, args, webhook_settings):
        with pytest.raises(CommandError, match="one delivery ID, or --failed"):
            run("neuraldraft_webhook_replay", *args)

    def test_an_unknown_delivery_is_a_command_error(self, webhook_settings):
        with pytest.raises(CommandError, match="No stored webhook delivery 'evt_nope'"):
            run("neuraldraft_webhook_replay", "evt_nope")

    def test_an_unverified_delivery_is_refused(self, webhook_settings):
        event = WebhookEvent.objects.create(outcome=WebhookOutcome.REJECTED, error="bad")
        with pytest.raises(CommandError, match="verified signature"):
            run("neuraldraft_webhook_replay", str(event.pk))

"""No text from Neural Draft reaches a terminal as escape sequences or extra lines."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from django_neuraldraft import services
from django_neuraldraft.choices import WebhookOutcome
from django_neuraldraft.models import WebhookEvent
from django_neuraldraft.terminal import printable

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("neuraldraft_settings")]

#: Clears the screen, retitles the window, forges a link and a line of output.
HOSTILE = "\x1b[2J\x1b]0;owned\x07Oops \x1b]8;;http://evil\x07link\x1b]8;;\x07\nOK: all done"


def run_all(name: str, *args: str) -> tuple[str, str]:
    """The command's stdout and stderr, and its error message if it raised, together."""
    out, err = StringIO(), StringIO()
    try:
        call_command(name, *args, stdout=out, stderr=err)
    except CommandError as error:
        err.write(str(error))
    return out.getvalue(), err.getvalue()


def assert_plain(*texts: str) -> None:
    for text in texts:
        assert "\x1b" not in text
        assert "\x07" not in text
        assert "\nOK: all done" not in text


@pytest.fixture
def failed_job(sandbox):
    """A job that Neural Draft failed with a hostile code and message."""
    sandbox.set_fault("job_failure", count=1, code="bad\x1b[31mcode", message=HOSTILE)
    job = services.submit(services.generate("hero.background", prompt="A quiet harbour"))
    sandbox.finish_job(job.remote_id)
    return job


def test_a_failed_job_is_shown_as_plain_text(failed_job):
    services.poll_once(failed_job)

    for name, args in [
        ("neuraldraft_status", ["hero.background"]),
        ("neuraldraft_status", []),
        ("neuraldraft_refresh", ["--all"]),
    ]:
        out, err = run_all(name, *args)
        assert_plain(out, err)
    out, _err = run_all("neuraldraft_status")
    assert "last job failed" in out
    # Stored escaped (services.remote.clean_text), the text is shown as stored.
    assert "evil\\x07link\\x1b]8;;\\x07\\nOK: all done (bad\\x1b[31mcode)" in out


def test_waiting_for_a_failed_job_shows_plain_text(failed_job):
    out, err = run_all("neuraldraft_generate", "hero.background", "--wait")

    assert_plain(out, err)
    assert "failed: " in err


def test_an_api_error_is_shown_as_plain_text(sandbox):
    sandbox.set_fault("status", status=400, code="x\x1b[2Jy", path="/v1/images")

    out, err = run_all("neuraldraft_pull", "hero.background")

    assert_plain(out, err)
    assert "hero.background: 400 x" in err
    assert "[2Jy: Injected fault: status 400." in err


def test_a_prompt_typed_in_the_admin_is_listed_as_plain_text(make_image):
    make_image("hero.background", prompt=HOSTILE)

    out, err = run_all("neuraldraft_rollback", "hero.background")

    assert_plain(out, err)


def test_a_webhook_endpoint_is_shown_as_plain_text(sandbox):
    sandbox.set_fault(
        "answer_fields",
        path="/v1/webhook-endpoints",
        fields={"url": "https://example.com/\x1b[2J"},
    )

    out, err = run_all("neuraldraft_webhook_register", "https://example.com/neuraldraft/webhook/")

    assert_plain(out, err)
    assert " for https://example.com/neuraldraft/webhook/." in out


def test_a_replayed_delivery_is_shown_as_plain_text(settings):
    settings.NEURALDRAFT = {**settings.NEURALDRAFT, "WEBHOOK_SECRET": "whsec_" + "s" * 32}
    WebhookEvent.objects.create(
        event_id="evt_\x1b[2Jx",
        remote_job_id="job_missing",
        verified=True,
        outcome=WebhookOutcome.FAILED,
        body="{}",
    )

    out, err = run_all("neuraldraft_webhook_replay", "--failed")

    assert_plain(out, err)
    assert " evt_ [2Jx: " in out


@pytest.mark.parametrize(
    ("value", "limit", "expected"),
    [
        ("Rendering", None, "Rendering"),
        ("a\x1b[2Jb\r\nc\u202ed\x00", None, "a [2Jb c d"),
        ("  spaced \t out  ", None, "spaced out"),
        ("x" * 50, 10, "x" * 10),
        (42, None, "42"),
    ],
)
def test_printable(value, limit, expected):
    assert printable(value, limit) == expected

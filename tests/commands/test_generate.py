"""``neuraldraft_generate``: start a generation, or wait for it here with a progress display."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from django_neuraldraft.choices import JobStatus
from django_neuraldraft.models import ImageKey, Job
from django_neuraldraft.testing import run_sandbox

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("neuraldraft_settings")]


class TerminalIO(StringIO):
    """An output stream that says it is a terminal, as a shell's stdout does."""

    def isatty(self) -> bool:
        return True


def generate(*args: str, stdout=None) -> str:
    out = stdout if stdout is not None else StringIO()
    call_command("neuraldraft_generate", *args, stdout=out)
    return out.getvalue()


class TestWithoutWait:
    def test_creates_the_key_and_queues_a_job(self, sandbox, published):
        output = generate(
            "hero.background",
            "--prompt",
            "A quiet harbour",
            "--aspect-ratio",
            "4:3",
            "--alt-text",
            "The harbour",
        )

        image_key = ImageKey.objects.get(key="hero.background")
        assert (image_key.prompt, image_key.aspect_ratio, image_key.alt_text) == (
            "A quiet harbour",
            "4:3",
            "The harbour",
        )
        job = image_key.jobs.get()
        assert job.status == JobStatus.PENDING
        assert f"(40 credits): job #{job.pk}." in output
        assert "neuraldraft_refresh" in output
        assert sandbox.requests == []

    def test_a_running_generation_is_not_started_twice(self, sandbox):
        generate("hero.background", "--prompt", "A quiet harbour")
        output = generate("hero.background", "--prompt", "A quiet harbour")

        assert "already running" in output
        assert Job.objects.count() == 1

    @pytest.mark.parametrize(
        ("args", "message"),
        [
            (["Hero Background", "--prompt", "x"], "not a valid image key"),
            (["hero.background"], "has no prompt"),
            (["hero.background", "--prompt", "x", "--timeout", "5"], "only applies with --wait"),
            (["hero.background", "--prompt", "x", "--wait", "--timeout", "-1"], "positive"),
            (["hero.background", "--prompt", "x", "--wait", "--timeout", "inf"], "positive"),
            (["hero.background", "--prompt", "x", "--aspect-ratio", "2:1"], "invalid choice"),
            (["hero.background", "--prompt", "   "], "has no prompt"),
            (["hero.background", "--prompt", "x", "--style", "s" * 101], "at most 100"),
        ],
    )
    def test_bad_input_changes_nothing(self, sandbox, args, message):
        with pytest.raises(CommandError, match=message) as raised:
            generate(*args)

        assert raised.value.returncode == 1
        assert not Job.objects.exists()
        assert not ImageKey.objects.exists()
        assert sandbox.requests == []

    def test_the_daily_budget_is_kept(self, sandbox, settings):
        settings.NEURALDRAFT = {**settings.NEURALDRAFT, "DAILY_CREDIT_BUDGET": 10}

        ImageKey.objects.create(key="hero.background", prompt="A quiet harbour")

        with pytest.raises(CommandError, match="DAILY_CREDIT_BUDGET"):
            generate("hero.background", "--prompt", "A harbour at dusk", "--alt-text", "Dusk")

        assert not Job.objects.exists()
        image_key = ImageKey.objects.get()
        assert (image_key.prompt, image_key.alt_text) == ("A quiet harbour", "")


@pytest.mark.django_db(transaction=True)
class TestBrokerDown:
    """The job is committed, so queueing it really runs, against a broker that is down."""

    def test_without_wait_the_saved_job_is_reported(self, sandbox, broker_down):
        with pytest.raises(CommandError, match=r"pass --wait or run manage\.py"):
            generate("hero.background", "--prompt", "A quiet harbour")

        job = Job.objects.get()
        assert (job.status, job.remote_id) == (JobStatus.PENDING, None)
        assert sandbox.requests == []

    def test_wait_sends_the_job_itself(self, sandbox, broker_down):
        output = generate("hero.background", "--prompt", "A quiet harbour", "--wait")

        assert ImageKey.objects.get().current is not None
        assert "now shows" in output


class TestWait:
    def test_binds_the_image_without_a_worker_and_prints_lines_off_a_terminal(self, sandbox):
        output = generate("hero.background", "--prompt", "A quiet harbour", "--wait")

        image_key = ImageKey.objects.get(key="hero.background")
        assert image_key.current is not None
        assert image_key.current.job.status == JobStatus.COMPLETED
        assert f"now shows {image_key.current.file.name}" in output
        lines = output.splitlines()
        progress = [line for line in lines if line.startswith("hero.background: ")]
        assert progress[0].startswith("hero.background: pending")
        assert any(" 100%" in line for line in progress)
        assert "\r" not in output

    def test_an_api_that_cannot_be_reached_is_named_at_the_timeout(self, sandbox):
        sandbox.set_fault("status", status=503, method="POST", path="/v1/images")

        with pytest.raises(CommandError) as raised:
            generate("hero.background", "--prompt", "x", "--wait", "--timeout", "1")

        assert raised.value.returncode == 3
        assert "was not sent in 1 seconds: Neural Draft could not be reached (503" in str(
            raised.value
        )
        assert Job.objects.get().status == JobStatus.PENDING

    def test_a_timeout_longer_than_a_lock_can_wait_is_fine(self, sandbox):
        output = generate("hero.background", "--prompt", "x", "--wait", "--timeout", "1e300")

        assert "now shows" in output

    def test_follows_the_event_stream_and_polls_once_at_the_end(self, sandbox):
        generate("hero.background", "--prompt", "A quiet harbour", "--wait")

        job = Job.objects.get()
        sandbox.assert_called("GET", f"/v1/jobs/{job.remote_id}/stream")
        sandbox.assert_called("GET", f"/v1/jobs/{job.remote_id}", times=1)

    def test_falls_back_to_polling_when_the_stream_fails(self, sandbox):
        sandbox.set_fault("status", status=404, method="GET", path="/v1/jobs/", count=1)

        output = generate("hero.background", "--prompt", "A quiet harbour", "--wait")

        job = Job.objects.get()
        assert job.image_version is not None
        assert "now shows" in output
        (stream,) = sandbox.assert_called("GET", f"/v1/jobs/{job.remote_id}/stream")
        assert stream.status == 404
        assert sandbox.assert_called("GET", f"/v1/jobs/{job.remote_id}")

    def test_draws_a_bar_on_a_terminal(self, sandbox):
        output = generate(
            "hero.background", "--prompt", "A quiet harbour", "--wait", stdout=TerminalIO()
        )

        assert "\rhero.background [" in output
        assert "[########################] 100%" in output
        assert "\nhero.background now shows" in output

    def test_a_failed_job_exits_non_zero_with_its_reason(self, sandbox):
        sandbox.set_fault("job_failure", message="The model is down.")

        with pytest.raises(CommandError, match="The model is down") as raised:
            generate("hero.background", "--prompt", "A quiet harbour", "--wait")

        assert raised.value.returncode == 1
        assert ImageKey.objects.get().current is None

    def test_a_refused_submit_fails_at_once(self, sandbox):
        sandbox.set_fault(
            "status", status=402, code="insufficient_credits", method="POST", path="/v1/images"
        )

        with pytest.raises(CommandError, match="insufficient_credits") as raised:
            generate("hero.background", "--prompt", "A quiet harbour", "--wait")

        assert raised.value.returncode == 1
        assert Job.objects.get().status == JobStatus.FAILED

    def test_a_rejected_image_is_not_bound(self, sandbox):
        sandbox.set_fault("corrupt_image")

        out = StringIO()
        with pytest.raises(CommandError, match="invalid_image"):
            generate("hero.background", "--prompt", "A quiet harbour", "--wait", stdout=out)

        assert ImageKey.objects.get().current is None
        last = out.getvalue().splitlines()[-1]
        assert last == f"hero.background: failed 100% {Job.objects.get().error_message}"

    def test_a_timeout_leaves_the_job_running_and_exits_3(self, settings):
        with run_sandbox(job_seconds=60) as slow:
            settings.NEURALDRAFT = {**settings.NEURALDRAFT, "BASE_URL": slow.base_url}

            with pytest.raises(CommandError, match="goes on") as raised:
                generate("hero.background", "--prompt", "Harbour", "--wait", "--timeout", "0.5")

            (job,) = slow.jobs.values()
            assert job["status"] in ("pending", "processing")
        assert raised.value.returncode == 3
        assert Job.objects.get().status in (JobStatus.PENDING, JobStatus.PROCESSING)

    def test_a_job_past_job_timeout_is_failed_at_the_deadline(self, settings):
        with run_sandbox(job_seconds=60) as slow:
            settings.NEURALDRAFT = {
                **settings.NEURALDRAFT,
                "BASE_URL": slow.base_url,
                "JOB_TIMEOUT": 0.5,
            }

            with pytest.raises(CommandError, match="Gave up after") as raised:
                generate("hero.background", "--prompt", "Harbour", "--wait", "--timeout", "1")

            (job_id,) = slow.jobs
            slow.assert_called("GET", f"/v1/jobs/{job_id}/stream")
        assert raised.value.returncode == 1
        assert Job.objects.get().error_code == "timed_out"

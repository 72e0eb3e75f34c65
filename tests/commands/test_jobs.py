"""``neuraldraft_refresh``, ``neuraldraft_cancel``: following and stopping jobs from the shell."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from django_neuraldraft import services
from django_neuraldraft.choices import JobStatus
from django_neuraldraft.models import ImageKey, Job

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("neuraldraft_settings")]


class TestRefresh:
    def test_sends_polls_and_binds_without_a_worker(self, run, sandbox):
        unsent = services.generate("team.photo", prompt="Four people at a desk")
        running = services.submit(services.generate("hero.background", prompt="A harbour"))
        sandbox.finish_job(running.remote_id)

        output = run("neuraldraft_refresh", "--all")

        unsent.refresh_from_db()
        assert unsent.remote_id is not None
        hero = ImageKey.objects.get(key="hero.background")
        assert hero.current.job == running
        assert f"bound {hero.current.file.name}" in output
        assert "2 job(s) followed, 1 image(s) bound, 0 failed." in output

        sandbox.finish_job(unsent.remote_id)
        run("neuraldraft_refresh", "team.photo")
        assert ImageKey.objects.get(key="team.photo").current is not None
        assert "0 job(s) followed" in run("neuraldraft_refresh", "--all")

    def test_only_the_named_keys(self, run, sandbox):
        services.generate("team.photo", prompt="Four people at a desk")
        hero = services.generate("hero.background", prompt="A harbour")

        run("neuraldraft_refresh", "hero.background")

        assert list(Job.objects.filter(remote_id__isnull=False)) == [hero]

    def test_a_failed_job_exits_1(self, run, sandbox):
        sandbox.set_fault("job_failure", message="The model is down.")
        job = services.submit(services.generate("hero.background", prompt="A harbour"))
        sandbox.finish_job(job.remote_id)

        with pytest.raises(CommandError, match="1 job"):
            run("neuraldraft_refresh", "--all")

        job.refresh_from_db()
        assert job.status == JobStatus.FAILED

    def test_an_unreachable_api_is_retried_next_run(self, run, sandbox):
        services.generate("hero.background", prompt="A harbour")
        sandbox.set_fault("status", status=503)

        with pytest.raises(CommandError, match="could not be followed"):
            run("neuraldraft_refresh", "--all")

        assert Job.objects.get().status == JobStatus.PENDING

    def test_a_refused_poll_fails_the_job_with_its_reason(self, run, sandbox):
        job = services.submit(services.generate("hero.background", prompt="A harbour"))
        sandbox.set_fault("status", status=401, path="/v1/jobs")

        out = StringIO()
        with pytest.raises(CommandError, match=r"1 job\(s\) failed and 0 could not be followed"):
            call_command("neuraldraft_refresh", "--all", stdout=out)

        line = out.getvalue().splitlines()[0]
        assert line.startswith(f"hero.background {job.remote_id}: failed: 401 unauthorized")
        assert "could not be reached" not in line

    @pytest.mark.parametrize(
        ("args", "message"),
        [
            ([], "Name image keys or pass --all"),
            (["--all", "hero.background"], "not both"),
            (["missing.key"], "No image key missing.key"),
        ],
    )
    def test_bad_input(self, run, args, message):
        with pytest.raises(CommandError, match=message):
            run("neuraldraft_refresh", *args)


class TestCancel:
    def test_by_key(self, run, sandbox):
        job = services.submit(services.generate("hero.background", prompt="A harbour"))

        output = run("neuraldraft_cancel", "hero.background")

        job.refresh_from_db()
        assert job.status == JobStatus.CANCELLED
        assert f"Job {job.remote_id} is cancelled." in output
        sandbox.assert_called("POST", f"/v1/jobs/{job.remote_id}/cancel")

    def test_by_job_id(self, run, sandbox):
        job = services.submit(services.generate("hero.background", prompt="A harbour"))

        run("neuraldraft_cancel", job.remote_id)

        job.refresh_from_db()
        assert job.status == JobStatus.CANCELLED

    def test_an_unsent_job_is_cancelled_locally(self, run, sandbox):
        job = services.generate("hero.background", prompt="A harbour")

        run("neuraldraft_cancel", "hero.background")

        job.refresh_from_db()
        assert job.status == JobStatus.CANCELLED
        assert sandbox.requests == []

    def test_a_job_sent_without_an_answer_is_cancelled_once_it_has_an_id(self, run, sandbox):
        job = services.generate("hero.background", prompt="A harbour")
        sandbox.set_fault("status", status=503, method="POST", path="/v1/images")
        services.poll_once(job)

        output = run("neuraldraft_cancel", "hero.background")

        assert "as soon as its id is known" in output
        job.refresh_from_db()
        assert (job.status, job.cancel_requested_at is not None) == (JobStatus.PENDING, True)

    def test_a_finished_job_exits_1(self, run, make_image):
        version = make_image("hero.background")

        with pytest.raises(CommandError, match="already ended: completed"):
            run("neuraldraft_cancel", version.job.remote_id)
        with pytest.raises(CommandError, match=r"No job of hero\.background is running"):
            run("neuraldraft_cancel", "hero.background")

    def test_unknown_target(self, run):
        with pytest.raises(CommandError, match="No job job_nothing and no image key"):
            run("neuraldraft_cancel", "job_nothing")

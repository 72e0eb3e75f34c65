"""``neuraldraft_status``: what each key shows and runs, as text or JSON; exit 1 on failure."""

from __future__ import annotations

import json

import pytest
from django.core.management.base import CommandError

from django_neuraldraft import services
from django_neuraldraft.models import ImageKey

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("neuraldraft_settings")]


def test_lists_every_key_with_its_image_and_running_job(make_image, run):
    version = make_image("hero.background")
    services.generate("team.photo", prompt="Four people at a desk")
    ImageKey.objects.create(key="empty.slot")

    output = run("neuraldraft_status")

    assert output.index("empty.slot") < output.index("hero.background") < output.index("team")
    assert f"on show: {version.file.name}" in output
    assert "on show: nothing yet" in output
    assert "running: unsubmitted job" in output


def test_json_shape(make_image, run):
    version = make_image("hero.background", aspect_ratio="4:3")
    job = services.generate("team.photo", prompt="Four people at a desk")

    data = json.loads(run("neuraldraft_status", "--json"))

    assert data["failed"] == []
    hero, team = data["keys"]
    assert hero["key"] == "hero.background"
    assert hero["aspect_ratio"] == "4:3"
    assert hero["current"] == {
        "id": version.pk,
        "file": version.file.name,
        "url": version.file.url,
        "width": version.width,
        "height": version.height,
        "origin": "generated",
        "created_at": version.created_at.isoformat(),
    }
    assert hero["running"] is None
    assert hero["latest_job"]["status"] == "completed"
    assert team["current"] is None
    assert team["running"]["id"] == job.pk
    assert team["running"]["status"] == "pending"
    assert set(team["running"]) == {
        "id",
        "remote_id",
        "status",
        "progress",
        "message",
        "error_code",
        "error_message",
        "created_at",
        "finished_at",
    }


def test_a_named_key_whose_latest_job_failed_exits_1(make_image, run, sandbox):
    make_image("hero.background")
    make_image("team.photo")
    sandbox.set_fault("job_failure", message="The model is down.")
    job = services.submit(services.generate("hero.background", prompt="At dusk"))
    sandbox.finish_job(job.remote_id)
    services.poll_once(job)

    with pytest.raises(CommandError, match=r"hero\.background") as raised:
        run("neuraldraft_status", "hero.background", "team.photo", "--json")

    assert raised.value.returncode == 1
    assert run("neuraldraft_status", "team.photo")
    assert "The model is down." in run("neuraldraft_status")


def test_unknown_and_invalid_keys_are_user_errors(run):
    with pytest.raises(CommandError, match=r"No image key nothing\.here"):
        run("neuraldraft_status", "nothing.here")
    with pytest.raises(CommandError, match="not a valid image key"):
        run("neuraldraft_status", "Not A Key")

"""``neuraldraft_cleanup``: old versions and their files go, the image on show never does."""

from __future__ import annotations

import io

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import storages
from django.core.management.base import CommandError
from django.utils import timezone
from PIL import Image

from django_neuraldraft import renditions, services
from django_neuraldraft.exceptions import CreditBudgetExceededError
from django_neuraldraft.models import ImageKey, ImageVersion, Job

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("neuraldraft_settings")]


@pytest.fixture
def history(make_image):
    """Four versions of hero.background, the second-oldest back on show, and a rendition."""
    versions = [make_image("hero.background", prompt=f"Harbour {n}") for n in range(4)]
    storage = storages["default"]
    rendition = storage.save("neuraldraft/hero.background/r/0-480.webp", ContentFile(b"x" * 7))
    versions[0].renditions = [
        {"width": 480, "height": 270, "format": "webp", "name": rendition, "bytes": 7}
    ]
    versions[0].save(update_fields=["renditions"])
    hero = ImageKey.objects.get()
    hero.current = versions[1]
    hero.save()
    return versions


def exists(name: str) -> bool:
    return storages["default"].exists(name)


def png(color: str) -> io.BytesIO:
    buffer = io.BytesIO()
    Image.new("RGB", (320, 180), color).save(buffer, "PNG")
    buffer.seek(0)
    return buffer


def test_keeps_the_newest_n_and_the_image_on_show(run, commit, history):
    oldest, on_show, older, newest = history

    with commit():
        output = run("neuraldraft_cleanup", "--keep", "1")

    assert set(ImageVersion.objects.all()) == {on_show, newest}
    assert not exists(oldest.file.name)
    assert not exists(older.file.name)
    assert not exists("neuraldraft/hero.background/r/0-480.webp")
    assert exists(on_show.file.name) and exists(newest.file.name)
    assert "Deleted 2 version(s) and 3 file(s)" in output
    assert f"hero.background {oldest.pk} " in output


def test_dry_run_changes_nothing(run, commit, history):
    with commit():
        output = run("neuraldraft_cleanup", "--keep", "0", "--dry-run")

    assert ImageVersion.objects.count() == 4
    assert all(exists(version.file.name) for version in history)
    assert "Would delete 3 version(s) and 4 file(s)" in output


def test_keep_zero_still_keeps_the_image_on_show(run, commit, history):
    with commit():
        run("neuraldraft_cleanup", "--keep", "0")

    hero = ImageKey.objects.get()
    assert list(ImageVersion.objects.all()) == [history[1]]
    assert hero.current == history[1]
    assert exists(hero.current.file.name)


def test_a_file_another_version_uses_stays(run, commit, make_image):
    first = make_image("hero.background", prompt="The same harbour")
    second = make_image("hero.background", prompt="The same harbour")
    assert first.file.name == second.file.name

    with commit():
        output = run("neuraldraft_cleanup", "--keep", "0")

    assert list(ImageVersion.objects.all()) == [second]
    assert exists(second.file.name)
    assert "Deleted 1 version(s) and 0 file(s)" in output


def test_nothing_to_do(run):
    assert "Deleted 0 version(s) and 0 file(s)" in run("neuraldraft_cleanup")


def test_a_negative_count_is_refused(run):
    with pytest.raises(CommandError, match="0 or more"):
        run("neuraldraft_cleanup", "--keep", "-1")


def test_the_jobs_of_deleted_versions_are_never_ingested_again(run, commit, history, sandbox):
    _oldest, on_show, _older, newest = history

    with commit():
        run("neuraldraft_cleanup", "--keep", "1")
    run("neuraldraft_refresh", "--all")

    assert not Job.objects.awaiting_ingest(before=timezone.now()).exists()
    assert set(ImageVersion.objects.all()) == {on_show, newest}
    assert ImageKey.objects.get().current == on_show
    assert Job.objects.filter(image_key__isnull=True).count() == 2


def test_a_candidate_awaiting_review_is_never_deleted(run, commit, history):
    oldest, on_show, _older, newest = history
    ImageVersion.objects.filter(pk__in=[oldest.pk, newest.pk]).update(candidate=True)

    with commit():
        output = run("neuraldraft_cleanup", "--keep", "0")

    assert set(ImageVersion.objects.all()) == {oldest, on_show, newest}
    assert exists(oldest.file.name) and exists(newest.file.name)
    assert "Deleted 1 version(s)" in output


def test_candidates_do_not_count_among_the_newest_kept(run, commit, history):
    _oldest, on_show, older, newest = history
    ImageVersion.objects.filter(pk=newest.pk).update(candidate=True)

    with commit():
        run("neuraldraft_cleanup", "--keep", "1")

    assert set(ImageVersion.objects.all()) == {on_show, older, newest}


def test_deleted_uploads_stay_counted_against_todays_budget(run, commit, sandbox, settings):
    settings.NEURALDRAFT = {**settings.NEURALDRAFT, "DAILY_CREDIT_BUDGET": 2}
    hero = ImageKey.objects.create(key="hero.background")
    services.upload(hero, png("#112233"))
    services.upload(hero, png("#445566"))

    with commit():
        run("neuraldraft_cleanup", "--keep", "0")

    assert ImageVersion.objects.count() == 1
    assert services.credits_left_today() == 0
    sent = len(sandbox.requests)
    with pytest.raises(CreditBudgetExceededError):
        services.upload(hero, png("#778899"))
    assert len(sandbox.requests) == sent


def test_a_file_bound_again_before_it_is_deleted_stays(run, django_capture_on_commit_callbacks):
    """The files go after the commit; an upload of the same bytes in between finds the
    content-addressed file and binds a version to it, so cleanup looks again then."""
    hero = ImageKey.objects.create(key="hero.background")
    old = services.upload(hero, png("#112233"))
    services.upload(hero, png("#445566"))

    with django_capture_on_commit_callbacks() as after_commit:
        run("neuraldraft_cleanup", "--keep", "0")
    again = services.upload(hero, png("#112233"))
    for callback in after_commit:
        callback()

    assert not ImageVersion.objects.filter(pk=old.pk).exists()
    assert again.file.name == old.file.name
    assert exists(again.file.name)


def test_renditions_the_settings_dropped_go_with_their_version(run, commit, settings):
    """Files of renditions the settings no longer ask for stay for cached pages, and go
    with their version (docs/renditions.rst)."""
    settings.NEURALDRAFT = {**settings.NEURALDRAFT, "RENDITION_WIDTHS": (80, 160)}
    hero = ImageKey.objects.create(key="hero.background")
    old = services.upload(hero, png("#112233"))
    renditions.make_for(old)
    dropped = [r["name"] for r in old.renditions]
    settings.NEURALDRAFT = {**settings.NEURALDRAFT, "RENDITION_WIDTHS": (120,)}
    renditions.make_for(old)
    remade = [r["name"] for r in old.renditions]
    assert dropped and all(exists(name) for name in dropped)
    services.upload(hero, png("#445566"))

    with commit():
        run("neuraldraft_cleanup", "--keep", "0")

    assert not ImageVersion.objects.filter(pk=old.pk).exists()
    assert [name for name in [old.file.name, *remade, *dropped] if exists(name)] == []

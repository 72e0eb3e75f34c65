"""``neuraldraft_pull`` and ``neuraldraft_rollback``: which image a key shows."""

from __future__ import annotations

import pytest
from django.core.management.base import CommandError

from django_neuraldraft.choices import ImageOrigin
from django_neuraldraft.models import ImageKey, ImageVersion

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("neuraldraft_settings")]


class TestPull:
    def test_adopts_the_remote_image_once(self, run, make_image):
        make_image("hero.background")
        ImageVersion.objects.all().delete()

        output = run("neuraldraft_pull", "hero.background")

        version = ImageKey.objects.get(key="hero.background").current
        assert version.origin == ImageOrigin.PULLED
        assert f"hero.background: now shows {version.file.name}" in output
        assert "already shows that image" in run("neuraldraft_pull", "hero.background")
        assert ImageVersion.objects.count() == 1

    def test_a_key_neural_draft_does_not_have_exits_1_after_the_others(self, run, make_image):
        make_image("hero.background")
        ImageVersion.objects.all().delete()

        with pytest.raises(CommandError, match=r"Could not pull nothing\.here"):
            run("neuraldraft_pull", "nothing.here", "hero.background")

        assert ImageKey.objects.get(key="hero.background").current is not None
        assert not ImageKey.objects.filter(key="nothing.here").exists()

    def test_an_invalid_key_changes_nothing(self, run, sandbox):
        with pytest.raises(CommandError, match="not a valid image key"):
            run("neuraldraft_pull", "hero.background", "Bad Key")

        assert sandbox.requests == []
        assert not ImageKey.objects.exists()


class TestRollback:
    def test_previous_and_to(self, run, make_image):
        first = make_image("hero.background", prompt="At dawn")
        second = make_image("hero.background", prompt="At dusk")

        output = run("neuraldraft_rollback", "hero.background", "--previous")

        assert ImageKey.objects.get().current == first
        assert f"now shows version {first.pk}" in output
        run("neuraldraft_rollback", "hero.background", "--to", str(second.pk))
        assert ImageKey.objects.get().current == second

    def test_without_a_target_lists_the_versions(self, run, make_image):
        first = make_image("hero.background", prompt="At dawn")
        second = make_image("hero.background", prompt="At dusk")

        lines = run("neuraldraft_rollback", "hero.background").splitlines()

        assert lines[0].startswith(f"* {second.pk:>6}")
        assert "At dusk" in lines[0]
        assert lines[1].startswith(f"  {first.pk:>6}")
        assert ImageKey.objects.get().current == second

    def test_refusals(self, run, make_image):
        only = make_image("hero.background")
        other = make_image("team.photo")

        with pytest.raises(CommandError, match="no version older"):
            run("neuraldraft_rollback", "hero.background", "--previous")
        with pytest.raises(CommandError, match="belongs to another key"):
            run("neuraldraft_rollback", "hero.background", "--to", str(other.pk))
        with pytest.raises(CommandError, match="No image version 999"):
            run("neuraldraft_rollback", "hero.background", "--to", "999")
        with pytest.raises(CommandError, match="not allowed with"):
            run("neuraldraft_rollback", "hero.background", "--to", "1", "--previous")
        assert ImageKey.objects.get(key="hero.background").current == only

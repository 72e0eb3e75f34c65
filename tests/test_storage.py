"""Images stay where they were saved: switching ``STORAGE`` keeps every existing image working."""

from __future__ import annotations

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import storages

from django_neuraldraft import resolver, services
from django_neuraldraft.models import ImageVersion
from django_neuraldraft.services.history import remove_old_versions
from django_neuraldraft.storage import ConfiguredStorage, is_content_addressed, storage_for

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.usefixtures("neuraldraft_settings", "cold_cache", "two_storages"),
]

SHA = "17d52c428b6f10d7b23f67fe914f2fbd5b8d51de284ddf93695f5caf4cf4ebb2"


@pytest.fixture
def two_storages(settings):
    settings.STORAGES = {
        "default": {
            "BACKEND": "django.core.files.storage.InMemoryStorage",
            "OPTIONS": {"base_url": "/media/"},
        },
        "archive": {
            "BACKEND": "django.core.files.storage.InMemoryStorage",
            "OPTIONS": {"base_url": "https://archive.example.com/"},
        },
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


def switch_storage(settings, alias: str) -> None:
    settings.NEURALDRAFT = {**settings.NEURALDRAFT, "STORAGE": alias}


def generated(key: str, sandbox, prompt: str = "A lighthouse at dusk") -> ImageVersion:
    job = services.submit(services.generate(key, prompt=f"{prompt} for {key}"))
    sandbox.finish_job(job.remote_id)
    version = services.poll_once(job).version
    assert version is not None
    return version


def stored_bytes(alias: str, name: str) -> bytes:
    with storages[alias].open(name) as file:
        return file.read()


class TestSwitchingStorage:
    def test_a_version_records_the_storage_it_was_saved_to(self, sandbox):
        version = generated("hero.background", sandbox)
        assert version.storage_alias == "default"
        assert storages["default"].exists(version.file.name)
        assert not storages["archive"].exists(version.file.name)

    def test_existing_images_keep_their_storage_and_new_ones_use_the_new_one(
        self, sandbox, settings
    ):
        old = generated("hero.background", sandbox)
        switch_storage(settings, "archive")

        old = ImageVersion.objects.get(pk=old.pk)
        assert old.file.url == f"/media/{old.file.name}"
        with old.file.open() as file:
            assert file.read() == stored_bytes("default", old.file.name)
        assert resolver.resolve("hero.background").url == f"/media/{old.file.name}"

        new = generated("team.portrait", sandbox)
        assert new.storage_alias == "archive"
        assert new.file.url == f"https://archive.example.com/{new.file.name}"
        assert storages["archive"].exists(new.file.name)
        assert not storages["default"].exists(new.file.name)
        assert resolver.resolve("team.portrait").url == new.file.url

    def test_regenerating_moves_the_key_and_rollback_brings_back_the_old_storage(
        self, sandbox, settings, commit
    ):
        old = generated("hero.background", sandbox)
        switch_storage(settings, "archive")
        new = generated("hero.background", sandbox)
        assert resolver.resolve("hero.background").url.startswith("https://archive.example.com/")

        with commit():
            services.rollback(new.image_key, old)

        assert resolver.resolve("hero.background").url == f"/media/{old.file.name}"

    def test_cleanup_deletes_old_files_from_the_storage_they_are_in(
        self, sandbox, settings, commit
    ):
        old = generated("hero.background", sandbox)
        switch_storage(settings, "archive")
        new = generated("hero.background", sandbox, prompt="A harbour at dawn")

        with commit():
            cleanup = remove_old_versions(keep=1)

        assert cleanup.versions == [old]
        assert cleanup.failed_files == []
        assert not storages["default"].exists(old.file.name)
        assert storages["archive"].exists(new.file.name)

    def test_storage_for_defaults_to_the_configured_alias(self, settings):
        assert storage_for() is storages["default"]
        assert storage_for("archive") is storages["archive"]
        switch_storage(settings, "archive")
        assert storage_for("") is storages["archive"]


class TestContentAddressedNames:
    @pytest.mark.parametrize(
        ("name", "expected"),
        [
            (f"neuraldraft/hero.background/{SHA}.png", True),
            (f"neuraldraft/hero.background/{SHA}-640w.webp", True),
            (f"neuraldraft/hero.background/{SHA}/640.avif", True),
            ("neuraldraft/hero.background/cover.png", False),
            (f"neuraldraft/hero.background/x{SHA}.png", False),
            (f"neuraldraft/hero.background/{SHA[:-1]}.png", False),
        ],
    )
    def test_names_holding_a_sha256(self, name, expected):
        assert is_content_addressed(name) is expected

    def test_other_storages_save_content_addressed_files_as_usual(self):
        name = f"neuraldraft/hero.background/{SHA}.png"
        assert ConfiguredStorage().save(name, ContentFile(b"png")) == name
        assert stored_bytes("default", name) == b"png"


@pytest.mark.django_db(transaction=True)
def test_the_migration_records_the_storage_configured_while_it_runs(settings):
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    graph = executor.loader.graph
    (adding,) = [node for node in graph.nodes if node[1].endswith("_imageversion_storage_alias")]
    before = [parent.key for parent in graph.node_map[adding].parents]
    executor.migrate(before)
    old_apps = executor.loader.project_state(before).apps
    image_key = old_apps.get_model("neuraldraft", "ImageKey").objects.create(key="hero.background")
    old_apps.get_model("neuraldraft", "ImageVersion").objects.create(
        image_key=image_key,
        file="neuraldraft/hero.background/old.png",
        width=16,
        height=9,
        bytes=100,
        mime_type="image/png",
        sha256=SHA,
        source_url="https://cdn.neuraldraft.io/old.png",
    )
    switch_storage(settings, "archive")

    executor = MigrationExecutor(connection)
    executor.migrate([adding])
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())

    assert ImageVersion.objects.get().storage_alias == "archive"

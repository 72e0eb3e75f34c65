"""The resolver: what a key shows, one query per batch, and invalidation that no race outlives.

Most tests run with ``SHARED_CACHE`` on (the suite's LocMemCache stands for a
cache every process shares); ``TestPerProcessCache`` runs with it as Django
sees it by default, per process.
"""

from __future__ import annotations

import logging

import pytest
from django.core.cache import caches
from django.core.cache.backends.locmem import LocMemCache
from django.core.files.storage import InMemoryStorage
from django.test import override_settings

from django_neuraldraft import resolver, services
from django_neuraldraft.models import ChangeToken, ImageKey, Job
from django_neuraldraft.resolver import ImageData, RenderMemo, Status
from tests.helpers import add_version, create_image_key

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("cold_cache", "shared_cache")]

API_KEY = "ndsk_test_" + "T" * 32
BATCH = "neuraldraft:batch:"
SHARED = {"API_KEY": API_KEY, "SHARED_CACHE": True}


@pytest.fixture
def shared_cache(settings):
    settings.NEURALDRAFT = SHARED


class RecordingCache(LocMemCache):
    """A LocMemCache that remembers the timeout each entry was last stored with."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.timeouts = {}

    def set(self, key, value, timeout=None, version=None):
        self.timeouts[key] = timeout
        return super().set(key, value, timeout, version)

    def set_many(self, data, timeout=None, version=None):
        self.timeouts.update(dict.fromkeys(data, timeout))
        return super().set_many(data, timeout, version)

    def batch_timeout(self):
        """The timeout of the one batch entry stored."""
        (timeout,) = (t for name, t in self.timeouts.items() if name.startswith(BATCH))
        return timeout


class DownCache(LocMemCache):
    """A cache whose server is unreachable."""

    def get_many(self, keys, version=None):
        raise ConnectionError("cache server unreachable")

    def set_many(self, data, timeout=None, version=None):
        raise ConnectionError("cache server unreachable")

    def set(self, key, value, timeout=None, version=None):
        raise ConnectionError("cache server unreachable")


class UrlOnlyStorage(InMemoryStorage):
    """A storage on which every call but ``url()`` fails the test: a remote backend's cost."""

    url_calls = 0

    def url(self, name):
        type(self).url_calls += 1
        return super().url(name)

    def _refuse(self, *args, **kwargs):
        raise AssertionError("the resolver touched the storage backend")

    exists = open = size = listdir = get_modified_time = _refuse


class SignedUrlStorage(InMemoryStorage):
    """What matters to the resolver of django-storages' S3Storage with querystring_auth."""

    querystring_auth = True
    querystring_expire = 600


@pytest.fixture
def hero():
    return create_image_key(
        "hero.background",
        file="neuraldraft/hero.background/first.png",
        alt_text="Dunes at dawn",
        aspect_ratio="16:9",
        dominant_color="#c08040",
    )


def url_of(key: str) -> str:
    return resolver.resolve(key).url


class TestResolve:
    def test_a_key_with_an_image_on_show(self, hero):
        data = resolver.resolve("hero.background")

        assert data == ImageData(
            key="hero.background",
            url="/media/neuraldraft/hero.background/first.png",
            width=1600,
            height=900,
            alt="Dunes at dawn",
            color="#c08040",
            aspect_ratio="16:9",
            status=Status.READY,
        )
        assert data.ready

    def test_a_key_without_an_image_has_the_colour_of_its_latest_version(self):
        image_key = create_image_key("card.one", alt_text="A card", aspect_ratio="4:5")
        add_version(image_key, "older.png", dominant_color="#111111")
        add_version(image_key, "newer.png", dominant_color="#222222")

        assert resolver.resolve("card.one") == ImageData(
            "card.one", "", None, None, "A card", "#222222", "4:5", Status.EMPTY
        )

    def test_a_running_generation_is_pending(self):
        image_key = create_image_key("card.two")
        Job.objects.create(image_key=image_key, idempotency_key="idem-1")

        assert resolver.resolve("card.two").status == Status.PENDING

    def test_a_running_generation_leaves_the_image_on_show(self, hero):
        Job.objects.create(image_key=hero, idempotency_key="idem-1")

        assert resolver.resolve("hero.background").status == Status.READY

    def test_an_unknown_key(self):
        assert resolver.resolve("nothing.here") == ImageData(
            "nothing.here", "", None, None, "", "", "", Status.UNKNOWN
        )

    @pytest.mark.parametrize("key", ["", "Hero", "a b", "../etc", ".hidden", '"><script>'])
    def test_an_invalid_key_asks_neither_the_cache_nor_the_database(
        self, key, django_assert_num_queries
    ):
        with override_settings(NEURALDRAFT={**SHARED, "CACHE_ALIAS": "absent"}):
            with django_assert_num_queries(0):
                data = resolver.resolve(key)

        assert data == ImageData(key, "", None, None, "", "", "", Status.INVALID)

    def test_fifty_keys_cost_one_query_cold_and_none_warm(self, django_assert_num_queries):
        keys = [f"grid.{n}" for n in range(50)]
        for key in keys[:40]:
            create_image_key(key, file=f"{key}.png")

        with django_assert_num_queries(1):
            cold = resolver.resolve_many(keys)
        with django_assert_num_queries(0):
            warm = resolver.resolve_many(keys)

        assert cold == warm
        assert sum(data.ready for data in warm.values()) == 40
        assert {warm[key].status for key in keys[40:]} == {Status.UNKNOWN}

    def test_a_change_rereads_the_batch_in_one_query(self, django_assert_num_queries):
        keys = ["row.alpha", "row.beta", "row.gamma"]
        for key in keys:
            create_image_key(key, file=f"{key}.png")
        resolver.resolve_many(keys)
        resolver.invalidate("row.beta")

        with django_assert_num_queries(1):
            assert all(data.ready for data in resolver.resolve_many(keys).values())
        with django_assert_num_queries(0):
            resolver.resolve_many(reversed(keys))

    def test_a_warm_batch_reads_two_cache_entries_and_then_one(self, hero):
        cache = caches["default"]
        reads = []
        original = cache.get_many
        resolver.resolve_many(["hero.background", "nothing.here"])
        resolver._local.clear()

        cache.get_many = lambda names, version=None: reads.append(names) or original(names)
        try:
            resolver.resolve_many(["hero.background", "nothing.here"])
            resolver.resolve_many(["nothing.here", "hero.background"])
        finally:
            del cache.get_many

        assert [len(names) for names in reads] == [2, 1]

    @override_settings(
        STORAGES={
            "default": {"BACKEND": "tests.test_resolver.UrlOnlyStorage"},
            "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
        }
    )
    def test_only_a_cache_miss_computes_urls_and_nothing_else_touches_storage(self, hero):
        UrlOnlyStorage.url_calls = 0

        resolver.resolve("hero.background")
        resolver.resolve("hero.background")

        assert UrlOnlyStorage.url_calls == 1


class TestCacheEntries:
    @override_settings(CACHES={"default": {"BACKEND": "tests.test_resolver.RecordingCache"}})
    def test_entries_live_for_cache_timeout_and_the_generation_for_ever(self, hero):
        resolver.resolve("hero.background")

        recorded = caches["default"]
        assert recorded.timeouts["neuraldraft:generation"] is None
        assert recorded.batch_timeout() == 86400
        assert len(recorded.timeouts) == 2

    @override_settings(
        CACHES={"default": {"BACKEND": "tests.test_resolver.RecordingCache"}},
        STORAGES={
            "default": {"BACKEND": "tests.test_resolver.SignedUrlStorage"},
            "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
        },
    )
    def test_a_signed_url_is_cached_for_half_its_life(self, hero):
        resolver.resolve("hero.background")

        assert caches["default"].batch_timeout() == 300

    def test_the_copy_a_process_keeps_expires_with_its_entry(
        self, hero, monkeypatch, django_assert_num_queries
    ):
        resolver._local.clear()
        resolver.resolve("hero.background")
        assert len(resolver._local) == 1
        later = resolver.time.time() + 86401
        monkeypatch.setattr(resolver.time, "time", lambda: later)

        with django_assert_num_queries(1):
            assert resolver.resolve("hero.background").ready

    @override_settings(CACHES={"default": {"BACKEND": "tests.test_resolver.RecordingCache"}})
    def test_a_pending_answer_is_trusted_briefly_because_a_cancel_sends_no_signal(self):
        Job.objects.create(image_key=create_image_key("card.two"), idempotency_key="idem-1")

        resolver.resolve("card.two")

        assert caches["default"].batch_timeout() == resolver.PENDING_TIMEOUT

    @override_settings(CACHES={"default": {"BACKEND": "tests.test_resolver.DownCache"}})
    def test_a_cache_that_is_down_falls_back_to_the_database(
        self, hero, caplog, django_assert_num_queries
    ):
        with caplog.at_level(logging.WARNING, logger="django_neuraldraft.resolver"):
            with django_assert_num_queries(1):
                data = resolver.resolve("hero.background")

        assert data.url == "/media/neuraldraft/hero.background/first.png"
        assert "The Neural Draft image cache failed" in caplog.text


class TestInvalidation:
    def test_every_change_replaces_the_database_token_too(self, hero, commit):
        before = ChangeToken.objects.get().value

        with commit():
            services.rollback(hero, add_version(hero, "second.png"))

        assert ChangeToken.objects.get().value != before

    def test_binding_a_new_image(self, hero, commit):
        assert url_of("hero.background").endswith("/first.png")
        second = add_version(hero, "neuraldraft/hero.background/second.png")

        with commit():
            hero.current = second
            hero.save(update_fields=["current", "updated_at"])
            assert url_of("hero.background").endswith("/first.png"), "changed before the commit"

        assert url_of("hero.background").endswith("/second.png")

    def test_rollback(self, hero, commit):
        first = hero.current
        second = add_version(hero, "neuraldraft/hero.background/second.png")
        with commit():
            services.rollback(hero, second)
        assert url_of("hero.background").endswith("/second.png")

        with commit():
            services.rollback(hero, first)

        assert url_of("hero.background").endswith("/first.png")

    def test_deleting_the_image_on_show(self, hero, commit):
        url_of("hero.background")

        with commit():
            hero.current.delete()

        assert resolver.resolve("hero.background").status == Status.EMPTY

    def test_deleting_the_key(self, hero, commit):
        url_of("hero.background")

        with commit():
            ImageKey.objects.get(key="hero.background").delete()

        assert resolver.resolve("hero.background").status == Status.UNKNOWN

    def test_creating_a_key_replaces_the_cached_unknown(self, commit):
        assert resolver.resolve("late.key").status == Status.UNKNOWN

        with commit():
            create_image_key("late.key", file="late.png")

        assert resolver.resolve("late.key").ready

    def test_renaming_a_key(self, hero, commit):
        url_of("hero.background")
        resolver.resolve("hero.renamed")

        with commit():
            hero.key = "hero.renamed"
            hero.save()

        assert resolver.resolve("hero.background").status == Status.UNKNOWN
        assert resolver.resolve("hero.renamed").ready

    def test_editing_the_alt_text(self, hero, commit):
        url_of("hero.background")

        with commit():
            hero.alt_text = "Dunes at dusk"
            hero.save(update_fields=["alt_text", "updated_at"])

        assert resolver.resolve("hero.background").alt == "Dunes at dusk"

    def test_a_generation_starting_then_failing(self, commit):
        image_key = create_image_key("card.two")
        assert resolver.resolve("card.two").status == Status.EMPTY

        with commit():
            job = Job.objects.create(image_key=image_key, idempotency_key="idem-1")
        assert resolver.resolve("card.two").status == Status.PENDING

        with commit():
            services.fail(job, "content_policy", "Refused.")
        assert resolver.resolve("card.two").status == Status.EMPTY

    def test_a_version_saved_without_its_key_loaded(self, hero, commit):
        url_of("hero.background")
        version = type(hero.current).objects.get(pk=hero.current_id)

        with commit():
            version.dominant_color = "#000000"
            version.save()

        assert resolver.resolve("hero.background").color == "#000000"

    def test_by_hand_after_an_update_query(self, hero):
        url_of("hero.background")
        ImageKey.objects.filter(pk=hero.pk).update(alt_text="Changed by update()")
        assert resolver.resolve("hero.background").alt == "Dunes at dawn"

        resolver.invalidate("hero.background")

        assert resolver.resolve("hero.background").alt == "Changed by update()"

    def test_a_read_racing_a_bind_is_never_served_after_it(self, hero, commit, monkeypatch):
        second = add_version(hero, "neuraldraft/hero.background/second.png")
        read = resolver._read

        def read_then_bind(keys):
            stale = read(keys)
            with commit():
                hero.current = second
                hero.save(update_fields=["current", "updated_at"])
            return stale

        monkeypatch.setattr(resolver, "_read", read_then_bind)
        assert url_of("hero.background").endswith("/first.png"), "read before the bind"
        monkeypatch.undo()

        assert url_of("hero.background").endswith("/second.png")

    @override_settings(
        CACHES={
            "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
            "web": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "s"},
            "worker": {
                "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
                "LOCATION": "s",
            },
        }
    )
    def test_across_two_cache_clients(self, hero, commit):
        web = {**SHARED, "CACHE_ALIAS": "web"}
        worker = {**SHARED, "CACHE_ALIAS": "worker"}
        second = add_version(hero, "neuraldraft/hero.background/second.png")
        with override_settings(NEURALDRAFT=web):
            assert url_of("hero.background").endswith("/first.png")

        with override_settings(NEURALDRAFT=worker), commit():
            services.rollback(hero, second)

        with override_settings(NEURALDRAFT=web):
            assert url_of("hero.background").endswith("/second.png")
        caches["web"].clear()

    @override_settings(CACHES={"default": {"BACKEND": "tests.test_resolver.DownCache"}})
    def test_a_cache_that_is_down_does_not_fail_the_change(self, hero, commit, caplog):
        with commit():
            services.rollback(hero, add_version(hero, "second.png"))

        assert ImageKey.objects.get(pk=hero.pk).current.file.name == "second.png"
        assert "cache server unreachable" in caplog.text


class TestRenderMemo:
    def test_a_new_key_is_resolved_with_the_batch(self, hero, django_assert_num_queries):
        memo = RenderMemo()
        create_image_key("hero.side", file="side.png")

        with django_assert_num_queries(1):
            assert memo.get("hero.background", ["hero.side", "unknown.key"]).ready
        with django_assert_num_queries(0):
            assert memo.get("hero.side").ready
            assert memo.get("unknown.key").status == Status.UNKNOWN

    def test_image_data_passes_through_and_other_values_become_strings(self, hero):
        memo = RenderMemo()
        data = resolver.resolve("hero.background")

        assert memo.get(data) is data
        assert memo.get(None).status == Status.INVALID
        assert memo.get(None).key == "None"


class TestPerProcessCache:
    """LocMemCache as Django's default: the ChangeToken row tells what another process did."""

    @pytest.fixture(autouse=True)
    def per_process(self, settings, shared_cache):
        settings.NEURALDRAFT = {"API_KEY": API_KEY}

    def test_warm_costs_the_token_query_and_cold_the_rows_too(
        self, hero, django_assert_num_queries
    ):
        assert not resolver.cache_is_shared()
        with django_assert_num_queries(2):
            cold = resolver.resolve("hero.background")
        with django_assert_num_queries(1) as queries:
            warm = resolver.resolve("hero.background")

        assert cold == warm
        assert "neuraldraft_changetoken" in queries.captured_queries[0]["sql"]

    def test_a_render_reads_the_token_once(self, hero, django_assert_num_queries):
        create_image_key("hero.side", file="side.png")
        memo = RenderMemo()
        memo.get("hero.background")

        with django_assert_num_queries(0):
            memo.get("hero.background")
        with django_assert_num_queries(1):
            memo.get("hero.side")

    @override_settings(
        CACHES={
            "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
            "worker": {
                "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
                "LOCATION": "w",
            },
        }
    )
    def test_a_bind_through_another_cache_is_seen_at_once(self, hero, commit):
        assert url_of("hero.background").endswith("/first.png")
        second = add_version(hero, "neuraldraft/hero.background/second.png")

        with override_settings(NEURALDRAFT={"API_KEY": API_KEY, "CACHE_ALIAS": "worker"}):
            with commit():
                services.rollback(hero, second)

        assert url_of("hero.background").endswith("/second.png")
        caches["worker"].clear()

    def test_without_the_token_row_nothing_is_cached(self, hero, django_assert_num_queries):
        ChangeToken.objects.all().delete()

        for _ in range(2):
            with django_assert_num_queries(2):
                assert resolver.resolve("hero.background").ready

    @override_settings(
        CACHES={"default": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"}}
    )
    def test_a_dummy_cache_costs_one_query_and_no_token(self, hero, django_assert_num_queries):
        for _ in range(2):
            with django_assert_num_queries(1):
                assert resolver.resolve("hero.background").ready


def test_a_foreign_value_under_a_batch_name_is_a_miss(hero, django_assert_num_queries):
    resolver.resolve("hero.background")
    resolver._local.clear()
    caches["default"].set(resolver._batch_name(("hero.background",)), "not a batch")

    with django_assert_num_queries(1):
        assert resolver.resolve("hero.background").ready

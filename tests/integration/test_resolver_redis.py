"""The resolver on a real Redis: two cache clients, as two processes of a site would have.

Each client is its own ``RedisCache`` alias with its own connection pool, on a
database of its own (``NEURALDRAFT_TEST_RESOLVER_REDIS_URL``, default db 13),
emptied before and after each test.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import requests
from django.core.cache import caches
from django.template import Context, Template
from django.test import override_settings

from django_neuraldraft import resolver, services
from tests.helpers import add_version, create_image_key, require_service
from tests.integration.conftest import redis_available

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

REDIS_URL = os.environ.get("NEURALDRAFT_TEST_RESOLVER_REDIS_URL", "redis://127.0.0.1:6379/13")
PREFIX = "neuraldraft-tests"
CLIENT = {
    "BACKEND": "django.core.cache.backends.redis.RedisCache",
    "LOCATION": REDIS_URL,
    "KEY_PREFIX": PREFIX,
}


@pytest.fixture
def redis_caches() -> Iterator[object]:
    """Aliases ``web`` and ``worker``: two clients of one Redis database, empty."""
    require_service(redis_available(REDIS_URL), f"needs Redis at {REDIS_URL}")
    import redis

    server = redis.Redis.from_url(REDIS_URL, socket_timeout=5)
    server.flushdb()
    with override_settings(CACHES={"default": CLIENT, "web": CLIENT, "worker": CLIENT}):
        yield server
        for alias in ("default", "web", "worker"):
            caches[alias].close()
    server.flushdb()
    server.close()


def as_process(alias: str, **extra):
    """The settings of one process of the site, whose image cache is ``alias``."""
    return override_settings(
        NEURALDRAFT={"API_KEY": "ndsk_test_" + "T" * 32, "CACHE_ALIAS": alias, **extra}
    )


@pytest.fixture(autouse=True)
def _no_local_copies():
    """Each test starts with no batch kept in this process, as a fresh process would."""
    resolver._local.clear()


def batch_name(server) -> bytes:
    """The name, in Redis, of the one batch the test stored."""
    (name,) = server.keys(f"{PREFIX}:1:neuraldraft:batch:2:*")
    return name


def render_hero() -> str:
    return Template('{% load neuraldraft %}{% neuraldraft_url "hero.background" %}').render(
        Context()
    )


def test_a_rollback_in_one_process_is_seen_by_the_other_at_once(
    redis_caches, commit, django_assert_num_queries
):
    hero = create_image_key("hero.background", file="neuraldraft/hero/first.png")
    second = add_version(hero, "neuraldraft/hero/second.png")
    with as_process("web"):
        assert render_hero() == "/media/neuraldraft/hero/first.png"
        with django_assert_num_queries(0):
            assert render_hero() == "/media/neuraldraft/hero/first.png"

    with as_process("worker"), commit():
        services.rollback(hero, second)

    with as_process("web"):
        with django_assert_num_queries(1):
            assert render_hero() == "/media/neuraldraft/hero/second.png"
        with django_assert_num_queries(0):
            assert render_hero() == "/media/neuraldraft/hero/second.png"


def test_a_deleted_key_disappears_from_the_other_process(redis_caches, commit):
    hero = create_image_key("hero.background", file="neuraldraft/hero/first.png")
    with as_process("web"):
        assert resolver.resolve("hero.background").ready

    with as_process("worker"), commit():
        hero.delete()

    with as_process("web"):
        assert resolver.resolve("hero.background").status == resolver.Status.UNKNOWN


def test_entries_expire_in_redis(redis_caches):
    create_image_key("hero.background", file="neuraldraft/hero/first.png")

    with as_process("web", CACHE_TIMEOUT=600):
        resolver.resolve("hero.background")

    assert 0 < redis_caches.ttl(batch_name(redis_caches)) <= 600
    assert redis_caches.ttl(f"{PREFIX}:1:neuraldraft:generation") == -1  # no expiry


def test_a_warm_page_reads_one_small_entry(redis_caches):
    for n in range(50):
        create_image_key(f"grid.{n}", file=f"neuraldraft/grid/{n}.png")
    page = Template(
        "{% load neuraldraft %}"
        + "".join(f'{{% neuraldraft_url "grid.{n}" %}}' for n in range(50))
    )
    with as_process("web"):
        page.render(Context())
        resolver._local.clear()
        redis_caches.config_resetstat()
        page.render(Context())
        page.render(Context())
        page.render(Context())

    calls = {
        name: stats["calls"]
        for name, stats in redis_caches.info("commandstats").items()
        if "resetstat" not in name and "info" not in name
    }
    assert calls == {"cmdstat_mget": 3}


def test_a_signed_s3_url_is_cached_for_at_most_half_its_life(redis_caches, s3_bucket):
    s3_bucket.client.put_object(
        Bucket=s3_bucket.name, Key="neuraldraft/hero/first.png", Body=b"not really a png"
    )
    create_image_key("hero.background", file="neuraldraft/hero/first.png")

    with as_process("web"):
        url = render_hero()

    assert "Signature=" in url
    assert requests.get(url.replace("&amp;", "&"), timeout=10).status_code == 200
    # S3Storage signs for querystring_expire = 3600 seconds by default.
    assert 0 < redis_caches.ttl(batch_name(redis_caches)) <= 1800

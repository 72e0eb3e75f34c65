"""An image bound in another process shows on the next page view, whatever the cache.

The other process is a real one (``python -c``) on the test's PostgreSQL
database, standing for the Celery worker: it rolls the key back to another
version, which is what a bind does to the key row. With a per-process cache
it cannot reach this process's cache; the ChangeToken row is what tells.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from django.core.cache import caches
from django.db import connection
from django.template import Context, Template

from django_neuraldraft import resolver
from tests.helpers import add_version, create_image_key, require_service
from tests.integration.conftest import REPO_ROOT, redis_available

pytestmark = [pytest.mark.integration]

REDIS_URL = os.environ.get("NEURALDRAFT_TEST_RESOLVER_REDIS_URL", "redis://127.0.0.1:6379/13")

BIND_ELSEWHERE = """
import json, os, django
from django.conf import settings
settings.CACHES = json.loads(os.environ["TEST_CACHES"])
django.setup()
from django_neuraldraft import services
from django_neuraldraft.models import ImageKey, ImageVersion
image_key = ImageKey.objects.get(key="hero.background")
services.rollback(image_key, ImageVersion.objects.get(pk=int(os.environ["TEST_VERSION"])))
"""

CACHES = {
    "locmem": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "dummy": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"},
    "redis": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL},
}


def render_hero() -> str:
    return Template('{% load neuraldraft %}{% neuraldraft_url "hero.background" %}').render(
        Context()
    )


def bind_in_another_process(version_pk: int, cache: dict) -> None:
    from django.conf import settings

    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.integration.worker_settings",
        "NEURALDRAFT_TEST_DB_NAME": connection.settings_dict["NAME"],
        "NEURALDRAFT_TEST_STORAGE": json.dumps(settings.STORAGES["default"]),
        "NEURALDRAFT_TEST_NEURALDRAFT": json.dumps(settings.NEURALDRAFT),
        "TEST_CACHES": json.dumps({"default": cache}),
        "TEST_VERSION": str(version_pk),
    }
    done = subprocess.run(
        [sys.executable, "-c", BIND_ELSEWHERE],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("backend", list(CACHES))
def test_a_bind_in_another_process_shows_on_the_next_page_view(
    backend, transactional_db, postgresql, settings, django_assert_max_num_queries
):
    if backend == "redis":
        require_service(redis_available(REDIS_URL), f"needs Redis at {REDIS_URL}")
    settings.CACHES = {"default": CACHES[backend]}
    settings.NEURALDRAFT = {"API_KEY": "ndsk_test_" + "T" * 32}
    caches["default"].clear()
    resolver._local.clear()
    hero = create_image_key("hero.background", file="neuraldraft/hero/first.png")
    second = add_version(hero, "neuraldraft/hero/second.png")
    assert render_hero() == "/media/neuraldraft/hero/first.png"
    with django_assert_max_num_queries(1):
        assert render_hero() == "/media/neuraldraft/hero/first.png"

    bind_in_another_process(second.pk, CACHES[backend])

    assert render_hero() == "/media/neuraldraft/hero/second.png"
    caches["default"].clear()

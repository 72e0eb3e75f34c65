"""What ``{% neuraldraft_image %}`` costs: one page of 50 tags against two ways sites do it today.

The three pages show the same 50 images with the same attributes:

- ``neuraldraft``: ``{% neuraldraft_image "bench.hero-N" alt=... class=... loading=... %}``,
  cache warm: LocMemCache, Django's default backend, or Redis when
  ``NEURALDRAFT_BENCH_TAGS_REDIS_URL`` names a database the bench may empty
  (``redis://127.0.0.1:6379/12``);
- ``static``: ``<img src="{% static ... %}" width=... height=... alt=...>``, the
  hard-coded floor;
- ``sorl``: sorl-thumbnail's ``{% thumbnail %}``, thumbnails made and its
  cached-db key-value store warm.

Each round renders every page ``RENDERS`` times, through the template backend as a
view does (a fresh context per render); the order of the pages rotates from round
to round so drift in the machine's speed falls on all of them. Ratios are the
median of the per-round ratios. ``queries_warm`` and ``queries_cold`` count the
SQL queries of one render of the neuraldraft page with the cache warm and after
``cache.clear()``. Prints one JSON line.
"""

from __future__ import annotations

import gc
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import django
from django.conf import settings

TAGS = 50
RENDERS = 200
ROUNDS = 15
ATTRIBUTES = 'class="hero" loading="lazy"'
REDIS_URL = os.environ.get("NEURALDRAFT_BENCH_TAGS_REDIS_URL")


def cache_settings() -> dict[str, object]:
    if REDIS_URL:
        return {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
    return {
        "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
        "OPTIONS": {"MAX_ENTRIES": 10_000},
    }


def configure(folder: Path) -> None:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="bench-only",
        USE_TZ=True,
        INSTALLED_APPS=[
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "django.contrib.staticfiles",
            "sorl.thumbnail",
            "django_neuraldraft",
        ],
        DATABASES={
            "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": str(folder / "db.sqlite3")}
        },
        CACHES={"default": cache_settings()},
        STORAGES={
            "default": {
                "BACKEND": "django.core.files.storage.FileSystemStorage",
                "OPTIONS": {"location": str(folder / "media"), "base_url": "/media/"},
            },
            "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
        },
        STATIC_URL="/static/",
        STATIC_ROOT=str(folder / "static"),
        TEMPLATES=[{"BACKEND": "django.template.backends.django.DjangoTemplates"}],
        NEURALDRAFT={"API_KEY": "ndsk_test_" + "B" * 32},
    )
    django.setup()


def create_images(folder: Path) -> None:
    from PIL import Image

    from django_neuraldraft.models import ImageKey, ImageVersion

    sources = folder / "media" / "sources"
    sources.mkdir(parents=True)
    for number in range(TAGS):
        Image.new("RGB", (128, 72), (number * 5, 90, 160)).save(sources / f"hero-{number}.jpg")
        image_key = ImageKey.objects.create(
            key=f"bench.hero-{number}", alt_text=f"Hero {number}", aspect_ratio="16:9"
        )
        image_key.current = ImageVersion.objects.create(
            image_key=image_key,
            file=f"neuraldraft/bench.hero-{number}/{number:064x}.jpg",
            width=1024,
            height=576,
            bytes=150_000,
            mime_type="image/jpeg",
            sha256=f"{number:064x}",
            dominant_color="#3a5a9a",
            source_url=f"https://cdn.neuraldraft.io/bench/hero-{number}.jpg",
        )
        image_key.save(update_fields=["current", "updated_at"])


def pages() -> dict[str, object]:
    from django.template import engines

    engine = engines["django"]
    neuraldraft = "".join(
        f'{{% neuraldraft_image "bench.hero-{n}" alt="Hero {n}" {ATTRIBUTES} %}}\n'
        for n in range(TAGS)
    )
    static = "".join(
        f'<img src="{{% static "img/hero-{n}.jpg" %}}" width="1024" height="576" '
        f'alt="Hero {n}" {ATTRIBUTES}>\n'
        for n in range(TAGS)
    )
    sorl = "".join(
        f'{{% thumbnail "sources/hero-{n}.jpg" "64x36" as im %}}<img src="{{{{ im.url }}}}" '
        f'width="{{{{ im.width }}}}" height="{{{{ im.height }}}}" alt="Hero {n}" {ATTRIBUTES}>'
        "{% endthumbnail %}\n"
        for n in range(TAGS)
    )
    return {
        "neuraldraft": engine.from_string("{% load neuraldraft %}" + neuraldraft),
        "static": engine.from_string("{% load static %}" + static),
        "sorl": engine.from_string("{% load thumbnail %}" + sorl),
    }


def timed(page, times: int) -> float:
    gc.collect()
    gc.disable()
    try:
        start = time.perf_counter()
        for _ in range(times):
            page.render({})
        return time.perf_counter() - start
    finally:
        gc.enable()


def count_queries(page) -> int:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        page.render({})
    return len(queries)


def main() -> dict[str, object]:
    from django.core.cache import cache
    from django.core.management import call_command

    with tempfile.TemporaryDirectory(prefix="neuraldraft-bench-") as name:
        folder = Path(name)
        configure(folder)
        call_command("migrate", verbosity=0)
        create_images(folder)
        templates = pages()
        for page in templates.values():
            page.render({})  # fills the caches and makes sorl's thumbnails
        rendered = templates["neuraldraft"].render({})
        assert rendered.count('<img src="/media/neuraldraft/bench.hero-') == TAGS, rendered

        times: dict[str, list[float]] = {name: [] for name in templates}
        order = list(templates)
        for round_number in range(ROUNDS):
            shift = round_number % len(order)
            for name in order[shift:] + order[:shift]:
                times[name].append(timed(templates[name], RENDERS))

        queries_warm = count_queries(templates["neuraldraft"])
        cache.clear()
        queries_cold = count_queries(templates["neuraldraft"])
        cache.clear()

    def ratio(other: str) -> float:
        return statistics.median(
            ours / theirs for ours, theirs in zip(times["neuraldraft"], times[other], strict=True)
        )

    return {
        "ratio_vs_static": round(ratio("static"), 3),
        "ratio_vs_sorl": round(ratio("sorl"), 3),
        "queries_warm": queries_warm,
        "queries_cold": queries_cold,
        **{
            f"us_per_page_{name}": round(statistics.median(values) / RENDERS * 1e6, 1)
            for name, values in times.items()
        },
        "tags": TAGS,
        "renders": RENDERS,
        "rounds": ROUNDS,
        "cache": "RedisCache" if REDIS_URL else "LocMemCache",
    }


if __name__ == "__main__":
    print(json.dumps(main()))

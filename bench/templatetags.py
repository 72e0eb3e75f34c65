"""What ``{% neuraldraft_image %}`` costs, on Redis as a site with a worker runs it.

Pages show the same images with the same attributes, written in these ways:

- ``neuraldraft``: ``{% neuraldraft_image "bench.hero-N" alt=... class=... loading=... %}``
  with literal keys, in pages of 10, 50 and 500 tags;
- ``loop``: the same 50 (and 500) images from ``{% for card in cards %}`` with
  ``{% neuraldraft_image card.key alt=card.alt ... %}``, ``cards`` a list of dicts,
  and ``loop_key_only``: the same 50 without ``alt=card.alt`` (the keys' own alt
  text is the same), which tells the key's cost from the variable attribute's;
- ``static``: ``<img src="{% static ... %}" width=... height=... alt=...>``, the
  hard-coded floor, in pages of 10, 50 and 500, and the same 50 from a loop
  (``static_loop``: ``{% static card.src %}``, ``alt="{{ card.alt }}"``);
- ``empty_loop``: the 50 literal tags followed by ``{% for card in cards %}``
  over the same 50 cards with nothing in it but a newline: what Django's loop
  alone adds to the literal page, the part of ``redis_loop_vs_literal`` that
  no tag can save (``redis_empty_loop_vs_literal``);
- ``field``: ``<img src="{{ obj.file.url }}" ...>`` over the 50 ``ImageVersion``
  rows the view reads in one query for each render (what a site does without
  this app: an ``ImageField`` on its own model);
- ``sorl``: sorl-thumbnail's ``{% thumbnail %}``, thumbnails made and its
  cached-db key-value store warm (50 tags).

The image cache is Redis (``NEURALDRAFT_BENCH_REDIS_URL``, default
``redis://127.0.0.1:6379/15``, a database the bench empties before and after);
the 50-tag page is also measured on ``LocMemCache``, Django's default, for
reference (``locmem_ratio_vs_static_50``). The database is SQLite.

Each round renders every page ``renders(tags)`` times through the template
backend as a view does (a fresh context per render); the order of the pages
rotates from round to round so drift in the machine's speed falls on all of
them. Ratios are the median of the per-round ratios. Cold timings clear the
cache before each render (the clearing is not timed); queries are counted on
one render. Prints one JSON line.
"""

from __future__ import annotations

import gc
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import django
from django.conf import settings

SIZES = (10, 50, 500)
IMAGES = max(SIZES)
ROUNDS = 11
COLD_RENDERS = 15
ATTRIBUTES = 'class="hero" loading="lazy"'
REDIS_URL = os.environ.get("NEURALDRAFT_BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")
API_KEY = "ndsk_test_" + "B" * 32


def renders(tags: int) -> int:
    """Renders per page and round: about the same time for every page size."""
    return max(4, 4000 // tags)


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
        CACHES={
            "default": {
                "BACKEND": "django.core.cache.backends.redis.RedisCache",
                "LOCATION": REDIS_URL,
            },
            "locmem": {
                "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
                "OPTIONS": {"MAX_ENTRIES": 10_000},
            },
        },
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
        NEURALDRAFT={"API_KEY": API_KEY},
    )
    django.setup()


def create_images(folder: Path) -> None:
    from PIL import Image

    from django_neuraldraft.models import ImageKey, ImageVersion

    sources = folder / "media" / "sources"
    sources.mkdir(parents=True)
    for number in range(IMAGES):
        if number < 50:
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


class Page:
    """A template and how a view renders it: ``context()`` is called for every render."""

    def __init__(self, source: str, context: Callable[[], dict] = dict, tags: int = 50):
        from django.template import engines

        self.template = engines["django"].from_string(source)
        self.context = context
        self.tags = tags

    def render(self) -> str:
        return self.template.render(self.context())


def literal(tags: int) -> str:
    return "{% load neuraldraft %}" + "".join(
        f'{{% neuraldraft_image "bench.hero-{n}" alt="Hero {n}" {ATTRIBUTES} %}}\n'
        for n in range(tags)
    )


def static(tags: int) -> str:
    return "{% load static %}" + "".join(
        f'<img src="{{% static "img/hero-{n}.jpg" %}}" width="1024" height="576" '
        f'alt="Hero {n}" {ATTRIBUTES}>\n'
        for n in range(tags)
    )


LOOP = (
    "{% load neuraldraft %}{% for card in cards %}"
    f"{{% neuraldraft_image card.key alt=card.alt {ATTRIBUTES} %}}\n"
    "{% endfor %}"
)

LOOP_KEY_ONLY = (
    "{% load neuraldraft %}{% for card in cards %}"
    f"{{% neuraldraft_image card.key {ATTRIBUTES} %}}\n"
    "{% endfor %}"
)

FIELD = (
    '{% for obj in versions %}<img src="{{ obj.file.url }}" width="{{ obj.width }}" '
    f'height="{{{{ obj.height }}}}" alt="Hero {{{{ forloop.counter0 }}}}" {ATTRIBUTES}>\n'
    "{% endfor %}"
)

EMPTY_LOOP = "{% for card in cards %}\n{% endfor %}"

STATIC_LOOP = (
    "{% load static %}{% for card in cards %}"
    '<img src="{% static card.src %}" width="1024" height="576" alt="{{ card.alt }}" '
    f"{ATTRIBUTES}>\n"
    "{% endfor %}"
)

SORL = "{% load thumbnail %}" + "".join(
    f'{{% thumbnail "sources/hero-{n}.jpg" "64x36" as im %}}<img src="{{{{ im.url }}}}" '
    f'width="{{{{ im.width }}}}" height="{{{{ im.height }}}}" alt="Hero {n}" {ATTRIBUTES}>'
    "{% endthumbnail %}\n"
    for n in range(50)
)


def cards(tags: int) -> Callable[[], dict]:
    rows = [
        {"key": f"bench.hero-{n}", "alt": f"Hero {n}", "src": f"img/hero-{n}.jpg"}
        for n in range(tags)
    ]
    return lambda: {"cards": rows}


def versions() -> dict:
    from django_neuraldraft.models import ImageVersion

    return {"versions": list(ImageVersion.objects.filter(pk__lte=50).order_by("pk"))}


def pages() -> dict[str, Page]:
    found = {}
    for tags in SIZES:
        found[f"neuraldraft_{tags}"] = Page(literal(tags), tags=tags)
        found[f"static_{tags}"] = Page(static(tags), tags=tags)
    found["loop_50"] = Page(LOOP, cards(50))
    found["loop_500"] = Page(LOOP, cards(500), tags=500)
    found["loop_key_only_50"] = Page(LOOP_KEY_ONLY, cards(50))
    found["static_loop_50"] = Page(STATIC_LOOP, cards(50))
    found["empty_loop_50"] = Page(literal(50) + EMPTY_LOOP, cards(50))
    found["field_50"] = Page(FIELD, versions)
    found["sorl_50"] = Page(SORL)
    return found


def timed(page: Page, times: int) -> float:
    gc.collect()
    gc.disable()
    try:
        start = time.perf_counter()
        for _ in range(times):
            page.render()
        return time.perf_counter() - start
    finally:
        gc.enable()


def timed_cold(page: Page) -> float:
    """Median seconds of one render after the cache was cleared."""
    from django.core.cache import caches

    from django_neuraldraft import conf

    cache = caches[conf.cache_alias()]
    seconds = []
    for _ in range(COLD_RENDERS):
        cache.clear()
        seconds.append(timed(page, 1))
    cache.clear()
    page.render()
    return statistics.median(seconds)


def count_queries(page: Page, *, cold: bool) -> int:
    from django.core.cache import caches
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from django_neuraldraft import conf

    if cold:
        caches[conf.cache_alias()].clear()
    with CaptureQueriesContext(connection) as queries:
        page.render()
    return len(queries)


def measure(templates: dict[str, Page]) -> dict[str, list[float]]:
    """Seconds per render of every page, one figure per round."""
    for page in templates.values():
        page.render()  # fills the caches and makes sorl's thumbnails
    times: dict[str, list[float]] = {name: [] for name in templates}
    order = list(templates)
    for round_number in range(ROUNDS):
        shift = round_number % len(order)
        for name in order[shift:] + order[:shift]:
            count = renders(templates[name].tags)
            times[name].append(timed(templates[name], count) / count)
    return times


def ratio(times: dict[str, list[float]], ours: str, theirs: str) -> float:
    return round(
        statistics.median(a / b for a, b in zip(times[ours], times[theirs], strict=True)), 3
    )


def main() -> dict[str, object]:
    import redis
    from django.test.utils import override_settings

    server = redis.Redis.from_url(REDIS_URL, socket_timeout=5)
    server.flushdb()
    with tempfile.TemporaryDirectory(prefix="neuraldraft-bench-") as name:
        folder = Path(name)
        configure(folder)
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        create_images(folder)
        templates = pages()
        rendered = templates["neuraldraft_50"].render()
        assert rendered.count('<img src="/media/neuraldraft/bench.hero-') == 50, rendered
        assert templates["loop_50"].render() == rendered
        assert templates["loop_key_only_50"].render() == rendered
        assert templates["empty_loop_50"].render() == rendered + "\n" * 50

        times = measure(templates)
        queries = {
            "queries_warm": count_queries(templates["neuraldraft_50"], cold=False),
            "queries_cold": count_queries(templates["neuraldraft_50"], cold=True),
            "redis_queries_cold_loop_500": count_queries(templates["loop_500"], cold=True),
        }
        cold = {
            f"redis_cold_ms_{name}": round(timed_cold(templates[name]) * 1e3, 2)
            for name in ("neuraldraft_50", "neuraldraft_500", "loop_500")
        }
        with override_settings(NEURALDRAFT={"API_KEY": API_KEY, "CACHE_ALIAS": "locmem"}):
            local = measure({name: templates[name] for name in ("neuraldraft_50", "static_50")})
            locmem_queries_warm = count_queries(templates["neuraldraft_50"], cold=False)
    server.flushdb()
    server.close()

    return {
        "ratio_vs_static": ratio(times, "neuraldraft_50", "static_50"),
        "ratio_vs_sorl": ratio(times, "neuraldraft_50", "sorl_50"),
        "queries_warm": queries["queries_warm"],
        "queries_cold": queries["queries_cold"],
        "redis_ratio_vs_static_50": ratio(times, "neuraldraft_50", "static_50"),
        "redis_ratio_vs_static_10": ratio(times, "neuraldraft_10", "static_10"),
        "redis_ratio_vs_static_500": ratio(times, "neuraldraft_500", "static_500"),
        "redis_loop_vs_literal": ratio(times, "loop_50", "neuraldraft_50"),
        "redis_loop_vs_literal_500": ratio(times, "loop_500", "neuraldraft_500"),
        "redis_loop_vs_literal_key_only": ratio(times, "loop_key_only_50", "neuraldraft_50"),
        "redis_empty_loop_vs_literal": ratio(times, "empty_loop_50", "neuraldraft_50"),
        "redis_loop_vs_static_loop_50": ratio(times, "loop_50", "static_loop_50"),
        "redis_ratio_vs_field_50": ratio(times, "neuraldraft_50", "field_50"),
        "redis_queries_cold_50": queries["queries_cold"],
        "redis_queries_cold_loop_500": queries["redis_queries_cold_loop_500"],
        **cold,
        "locmem_ratio_vs_static_50": ratio(local, "neuraldraft_50", "static_50"),
        "locmem_queries_warm_50": locmem_queries_warm,
        **{
            f"us_per_page_{name}": round(statistics.median(values) * 1e6, 1)
            for name, values in times.items()
        },
        "us_per_page_neuraldraft": round(statistics.median(times["neuraldraft_50"]) * 1e6, 1),
        "us_per_page_static": round(statistics.median(times["static_50"]) * 1e6, 1),
        "us_per_page_sorl": round(statistics.median(times["sorl_50"]) * 1e6, 1),
        "tags": 50,
        "renders": renders(50),
        "rounds": ROUNDS,
        "cache": "RedisCache",
    }


if __name__ == "__main__":
    print(json.dumps(main()))

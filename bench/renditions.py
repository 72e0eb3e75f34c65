"""Benchmark: what responsive renditions cost and save, as one JSON line.

Each measurement is a function of the running benchmark project that returns
its own keys; :func:`main` runs them in turn and merges what they return into
the one line on stdout, with ``goals_met`` over every goal in :data:`GOALS`.

``ingest`` (issue 10): images of 2048x1152 (the sandbox's JPEGs, about 480 KB,
as the API docs' example) generated at the sandbox and ingested through
``services.ingest`` (download, verification, storage, binding), then given
their renditions by ``renditions.make_for``, the work of the
``make_renditions`` task, with the default settings. Each run has a prompt of
its own, so no image or file is reused. Reported, as medians of ``--runs``
(5):

- ``ingest_s_per_image``: seconds from ingest to recorded renditions;
  ``ingest_s_per_image_without_renditions``: the ingest alone, the baseline,
  and ``renditions_ratio_vs_ingest`` the one over the other;
- ``ingest_cpu_s_per_image`` (and ``..._without_renditions``): CPU seconds of
  this process, less noisy than wall time on a shared machine; the sandbox
  serves the download from a thread of this process, and its render is
  finished before the clock starts;
- ``renditions_cpu_s_by_format``: CPU seconds spent encoding each format
  (``renditions_cpu_s_decode_resize`` apart), ``renditions_dominant_format``
  the largest of them;
- ``renditions_per_image``, ``renditions_bytes_per_image`` and
  ``original_bytes_per_image``.

Goal: ``ingest_s_per_image`` under 3 s on a 2-core machine.

``render_ratio`` (issue 10): a warm page of 50 ``{% neuraldraft_picture %}``
against the same 50 ``{% neuraldraft_image %}`` with the same attributes,
``sizes`` included, over versions that carry the renditions of a real image;
``render_ratio_vs_img``, the median of per-round ratios. Goal: <= 1.3.

``page_bytes`` (issue 10): the example site's home page (the five images of
``make demo``, generated, ingested and given their renditions here) served on
a free loopback port and loaded in headless Chromium (``/usr/bin/chromium``
through Playwright; ``playwright install`` is never needed) at 375 and 1440
CSS pixels wide, device pixel ratio 2, scrolled to its end so that lazy images
load, in a fresh context each time; ``bytes_375`` and ``bytes_1440`` are the
response bodies of its network log. ``..._original``: the same page as it was
before renditions (``neuraldraft_image`` without ``sizes``: the original
files); ``..._vs_original``, the one over the other. Goals: 5 times fewer
bytes at 375 px (<= 0.2), twice fewer at 1440 px (<= 0.5).

Run from a checkout: ``python bench/renditions.py [--runs 5]``.
"""

from __future__ import annotations

import argparse
import re
import resource
import socketserver
import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from wsgiref import simple_server

import requests
from _support import BENCH_DIR, Bench, bench_project, emit, note

#: Each result key with a goal, and the largest value that meets it.
GOALS = {
    "ingest_s_per_image": 3.0,
    "render_ratio_vs_img": 1.3,
    "bytes_375_vs_original": 0.2,
    "bytes_1440_vs_original": 0.5,
}


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def ingest(bench: Bench, args: argparse.Namespace) -> dict[str, Any]:
    """Seconds per 2048x1152 image: ingest alone, then ingest and renditions."""
    from django_neuraldraft import renditions, services
    from django_neuraldraft.models import ImageKey

    samples: dict[str, list[float]] = {"wall": [], "cpu": [], "wall_alone": [], "cpu_alone": []}
    by_format: dict[str, list[float]] = {}
    made, made_bytes, original_bytes = [], [], []
    runs = args.runs
    for run in range(runs):
        image_key = ImageKey.objects.create(
            key=f"bench.renditions-{run}",
            prompt=f"Benchmark picture {run}: a harbour at dawn",
            aspect_ratio="16:9",
        )
        job = services.submit(services.request_generation(image_key))
        bench.sandbox.finish_job(job.remote_id)
        job = services.refresh_job(job)
        # The sandbox renders while a job runs; a HEAD waits for that render,
        # so that the clock measures the ingest and not the sandbox's drawing.
        requests.head(job.result["url"], timeout=30).raise_for_status()
        wall, cpu = time.perf_counter(), cpu_seconds()
        version = services.ingest(job)
        alone_wall, alone_cpu = time.perf_counter() - wall, cpu_seconds() - cpu
        outcome = renditions.make_for(version)
        samples["wall"].append(time.perf_counter() - wall)
        samples["cpu"].append(cpu_seconds() - cpu)
        samples["wall_alone"].append(alone_wall)
        samples["cpu_alone"].append(alone_cpu)
        if outcome.failed:
            raise RuntimeError(f"Renditions failed: {outcome.failed}")
        for step, seconds in outcome.cpu_seconds.items():
            by_format.setdefault(step, []).append(seconds)
        made.append(len(outcome.renditions))
        made_bytes.append(sum(rendition["bytes"] for rendition in outcome.renditions))
        original_bytes.append(version.bytes)
        note(
            f"run {run + 1}/{runs}: {samples['wall'][-1]:.2f} s "
            f"({alone_wall:.2f} s ingest), {samples['cpu'][-1]:.2f} CPU s, "
            f"{len(outcome.renditions)} renditions"
        )
    median = {name: statistics.median(values) for name, values in samples.items()}
    steps = {step: round(statistics.median(values), 3) for step, values in by_format.items()}
    encoders = {step: seconds for step, seconds in steps.items() if step in renditions.FORMATS}
    return {
        "ingest_s_per_image": round(median["wall"], 3),
        "ingest_s_per_image_without_renditions": round(median["wall_alone"], 3),
        "renditions_ratio_vs_ingest": round(median["wall"] / median["wall_alone"], 2),
        "ingest_cpu_s_per_image": round(median["cpu"], 3),
        "ingest_cpu_s_per_image_without_renditions": round(median["cpu_alone"], 3),
        "renditions_cpu_s_by_format": encoders,
        "renditions_cpu_s_decode_resize": round(
            steps.get("decode", 0) + steps.get("resize", 0), 3
        ),
        "renditions_dominant_format": max(encoders, key=encoders.__getitem__),
        "renditions_per_image": statistics.median(made),
        "renditions_bytes_per_image": round(statistics.median(made_bytes)),
        "original_bytes_per_image": round(statistics.median(original_bytes)),
        "runs": runs,
    }


#: The example site's home page, as ``make demo`` shows it.
HOME_TEMPLATE = BENCH_DIR.parent / "example_project" / "templates" / "home.html"
#: Viewport widths (CSS pixels) of the page-weight measurements; device pixel ratio 2.
VIEWPORTS = (375, 1440)
CHROMIUM = "/usr/bin/chromium"
PICTURES = 50
RENDERS = 200
ROUNDS = 11


def _bind_with_renditions(bench: Bench, key: str, prompt: str, ratio: str, alt: str) -> Any:
    """Generate ``key`` at the sandbox, ingest it and make its renditions, as the worker does."""
    from django_neuraldraft import renditions, services
    from django_neuraldraft.models import ImageKey

    image_key = ImageKey.objects.create(key=key, prompt=prompt, aspect_ratio=ratio, alt_text=alt)
    job = services.submit(services.request_generation(image_key))
    bench.sandbox.finish_job(job.remote_id)
    job = services.refresh_job(job)
    version = services.ingest(job)
    outcome = renditions.make_for(version)
    if outcome.failed:
        raise RuntimeError(f"Renditions failed: {outcome.failed}")
    return version


def _original_page(source: str) -> str:
    """The page as it was before renditions: ``neuraldraft_image`` without ``sizes``."""
    return re.sub(
        r'(\{% )neuraldraft_picture( [^%]*?) sizes=("[^"]*"|\S+)', r"\1neuraldraft_image\2", source
    )


class _Site:
    """The home page, with renditions at ``/`` and with the originals at ``/original/``,
    and the media files, served by a threaded WSGI server on a free loopback port."""

    def __init__(self, media_root: Path) -> None:
        from django.core.handlers.wsgi import WSGIHandler
        from django.http import HttpResponse
        from django.template import Context, Engine
        from django.urls import include, path
        from django.views.static import serve

        engine = Engine(libraries={"neuraldraft": "django_neuraldraft.templatetags.neuraldraft"})
        source = HOME_TEMPLATE.read_text()
        pages = {
            "": engine.from_string(source),
            "original/": engine.from_string(_original_page(source)),
        }

        def page(request, template):
            return HttpResponse(template.render(Context()))

        # The page links to the admin, which the benchmark project does not install.
        admin = [path("", HttpResponse, name="neuraldraft_imagekey_changelist")]
        self.urlpatterns = [
            *(path(route, page, {"template": template}) for route, template in pages.items()),
            path("media/<path:path>", serve, {"document_root": str(media_root)}),
            path("admin/", include((admin, "admin"))),
        ]
        self.server = _ThreadingServer(("127.0.0.1", 0), _QuietHandler)
        self.server.set_app(WSGIHandler())
        self.url = f"http://127.0.0.1:{self.server.server_port}/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> _Site:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


class _ThreadingServer(socketserver.ThreadingMixIn, simple_server.WSGIServer):
    daemon_threads = True


class _QuietHandler(simple_server.WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def _downloaded_bytes(browser: Any, url: str, width: int) -> int:
    """Bytes of every response body the page loads at ``width`` CSS pixels, DPR 2, in
    a fresh context (no HTTP cache), lazy images included: the page is scrolled to its
    end and every image waited for."""
    context = browser.new_context(viewport={"width": width, "height": 800}, device_scale_factor=2)
    try:
        page = context.new_page()
        finished: list[Any] = []
        page.on("requestfinished", lambda request: finished.append(request))
        response = page.goto(url, wait_until="load")
        if response is None or not response.ok:
            raise RuntimeError(f"{url} answered {response and response.status}.")
        page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
        page.wait_for_function(
            "Array.from(document.images).every(image => image.complete)", timeout=30_000
        )
        page.wait_for_load_state("networkidle")
        return sum(
            request.sizes()["responseBodySize"]
            for request in finished
            if not request.url.startswith("data:")
        )
    finally:
        context.close()


def page_bytes(bench: Bench, args: argparse.Namespace) -> dict[str, Any]:
    """Bytes Chromium downloads for the example home page at 375 and 1440 CSS pixels."""
    from django.test.utils import override_settings
    from playwright.sync_api import sync_playwright

    from example_project.demo import DEMO_IMAGES

    if not Path(CHROMIUM).exists():
        raise RuntimeError(f"page_bytes needs Chromium at {CHROMIUM} (Debian's chromium).")
    for key, prompt, ratio, alt in DEMO_IMAGES:
        _bind_with_renditions(bench, key, prompt, ratio, alt)
    media_root = Path(bench.config["workdir"]) / "media"
    result: dict[str, Any] = {}
    with _Site(media_root) as site, override_settings(ROOT_URLCONF=site), sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            for width in VIEWPORTS:
                result[f"bytes_{width}"] = _downloaded_bytes(browser, site.url, width)
                result[f"bytes_{width}_original"] = _downloaded_bytes(
                    browser, site.url + "original/", width
                )
                result[f"bytes_{width}_vs_original"] = round(
                    result[f"bytes_{width}"] / result[f"bytes_{width}_original"], 3
                )
                note(
                    f"{width} px: {result[f'bytes_{width}']} bytes, "
                    f"{result[f'bytes_{width}_original']} with the originals"
                )
        finally:
            browser.close()
    return result


def render_ratio(bench: Bench, args: argparse.Namespace) -> dict[str, Any]:
    """A warm page of 50 ``neuraldraft_picture`` against the same 50 ``neuraldraft_image``."""
    from django.conf import settings
    from django.template import Context, Engine
    from django.test.utils import override_settings

    from django_neuraldraft.models import ImageKey, ImageVersion

    model = _bind_with_renditions(
        bench, "bench.picture", "A harbour at dawn, for the picture page", "16:9", "Harbour"
    )
    for number in range(PICTURES):
        image_key = ImageKey.objects.create(key=f"bench.picture-{number}", alt_text=f"P {number}")
        image_key.current = ImageVersion.objects.create(
            image_key=image_key,
            file=model.file.name,
            width=model.width,
            height=model.height,
            bytes=model.bytes,
            mime_type=model.mime_type,
            sha256=model.sha256,
            source_url=model.source_url,
            renditions=model.renditions,
        )
        image_key.save(update_fields=["current", "updated_at"])
    engine = Engine(libraries={"neuraldraft": "django_neuraldraft.templatetags.neuraldraft"})
    attributes = 'sizes="(min-width: 1024px) 50vw, 100vw" class="card" loading="lazy"'
    pages = {
        tag: engine.from_string(
            "{% load neuraldraft %}"
            + "".join(
                f'{{% {tag} "bench.picture-{n}" alt="Picture {n}" {attributes} %}}\n'
                for n in range(PICTURES)
            )
        )
        for tag in ("neuraldraft_picture", "neuraldraft_image")
    }
    # One process: its LocMemCache stands for a shared cache, as Redis in templatetags.py.
    shared = {**settings.NEURALDRAFT, "SHARED_CACHE": True}
    times: dict[str, list[float]] = {tag: [] for tag in pages}
    with override_settings(NEURALDRAFT=shared):
        for page in pages.values():
            page.render(Context())
        assert pages["neuraldraft_picture"].render(Context()).count("<source ") == 2 * PICTURES
        for round_number in range(ROUNDS):
            order = list(pages) if round_number % 2 else list(reversed(pages))
            for tag in order:
                start = time.perf_counter()
                for _ in range(RENDERS):
                    pages[tag].render(Context())
                times[tag].append(time.perf_counter() - start)
    ratios = [
        a / b
        for a, b in zip(times["neuraldraft_picture"], times["neuraldraft_image"], strict=True)
    ]
    return {
        "render_ratio_vs_img": round(statistics.median(ratios), 3),
        "render_us_per_page_picture": round(
            statistics.median(times["neuraldraft_picture"]) / RENDERS * 1e6, 1
        ),
        "render_us_per_page_img": round(
            statistics.median(times["neuraldraft_image"]) / RENDERS * 1e6, 1
        ),
    }


#: The measurements, in order; each takes the project and the parsed arguments.
MEASUREMENTS: tuple[Callable[[Bench, argparse.Namespace], dict[str, Any]], ...] = (
    ingest,
    render_ratio,
    page_bytes,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--runs", type=int, default=5, help="images measured (median of)")
    args = parser.parse_args(argv)
    result: dict[str, Any] = {"bench": "renditions"}
    with bench_project(job_seconds=0, image_format="jpeg") as bench:
        note(f"sandbox at {bench.sandbox.base_url}")
        for measure in MEASUREMENTS:
            result.update(measure(bench, args))
    result["goals_met"] = all(result[name] <= goal for name, goal in GOALS.items())
    emit(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

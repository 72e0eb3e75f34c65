"""Benchmark: peak memory of ingesting one large image, against the image's size.

A job completed at the sandbox is ingested by ``services.ingest`` in a fresh
subprocess (the probe): download, verification and decoding with Pillow (what
ingest decodes, for the dominant colour), storage save and binding, as a
worker would. ``--image`` picks the case; ``all`` (the default) runs each in
its own probe:

- ``padded``: the sandbox's ``oversized_image`` fault, a valid 8x8 PNG padded
  to ``--megabytes`` (40) with one large ancillary chunk;
- ``noise``: a PNG of random pixels of about ``--megabytes`` as Pillow writes
  it (64 KB IDAT chunks), over the colour limit, so it is checked, not decoded;
- ``jpeg``: a JPEG of random pixels (quality 95) of about ``--megabytes``,
  decoded at reduced scale for its colour;
- ``jpeg-progressive``: random pixels as a progressive JPEG at 4:4:4
  (quality 50, of about ``--megabytes`` up to 6000x6000, within
  ``MAX_PIXELS``), whose decode at any scale keeps the whole image's
  coefficients (6 bytes a pixel, about 8x the file), so it is checked, not
  decoded;
- ``png``: an RGBA PNG of random pixels, 2000x2000 (about 16 MB), under the
  colour limit (its decode, 4 bytes a pixel, is no larger than the file), so
  decoded in full for its colour;
- ``png-rgb``: the same as RGB (about 12 MB): its decode would take 1.33x the
  file, more than ``DOMINANT_COLOR_DECODE_BYTES``, so it is checked, not decoded;
- ``webp``: the RGB pixels as a lossless WebP (about 12 MB): opening it with
  Pillow would cost 2x the file and decoding it 6x, so its RIFF header is
  checked instead;
- ``gif``: a GIF of random palette indexes, 2000x2000 (about 5.5 MB), the last
  accepted format: its decode, 1 byte a pixel, is within the budget, so it is
  decoded in full for its colour.

Random pixels do not compress, so the file is about as large as its pixels:
the hardest case for a goal relative to the file size. The generated files
are served from a loopback file server through the sandbox's ``result_url``
fault.

Before the large ingest the probe ingests an ordinary image and checks a small
image of every accepted format, so that imports, connections and Pillow's
plugins are in place, then resets its peak RSS (``/proc/self/clear_refs``).
It reports ``rss_growth_fraction``: (peak RSS during the ingest - RSS before
it) / file size, per case. Goals (issue 7): <= 0.10 for images that are only
checked (``padded``, ``noise``, ``jpeg-progressive``), <= 1.2 for every image
that is decoded.

Run from a checkout: ``python bench/download_memory.py [--image all] [--megabytes 40]``.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from _support import bench_project, emit, note, subprocess_env

#: Goal per case: images only checked stay near their chunk buffers; decoded ones
#: may hold their pixels once.
GOALS = {
    "padded": 0.10,
    "noise": 0.10,
    "jpeg": 1.2,
    "jpeg-progressive": 0.10,
    "png": 1.2,
    "png-rgb": 1.2,
    "webp": 1.2,
    "gif": 1.2,
}
CASES = tuple(GOALS)
#: Side of the square ``png``, ``png-rgb``, ``webp`` and ``gif`` cases: 4 megapixels.
COLOUR_LIMIT_SIDE = 2000
#: Largest side of the ``jpeg-progressive`` case: 36 megapixels, under the default MAX_PIXELS.
PROGRESSIVE_SIDE = 6000
PROBE_TIMEOUT = 120.0
_PAGE_KEYS = ("VmRSS", "VmHWM")


def memory_status() -> dict[str, int]:
    """Current and peak resident set size of this process, in bytes."""
    values = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in _PAGE_KEYS:
            values[name] = int(rest.split()[0]) * 1024
    return values


def reset_peak() -> int:
    """Make the peak RSS (VmHWM) start again from the current RSS; return that RSS."""
    Path("/proc/self/clear_refs").write_text("5")
    return memory_status()["VmRSS"]


def warm_up_pillow() -> None:
    """Open and decode a small image of every accepted format, loading plugins and codecs."""
    from PIL import Image

    from django_neuraldraft.downloads import IMAGE_FORMATS, inspect_image

    for image_format in IMAGE_FORMATS:
        buffer = io.BytesIO()
        Image.new("RGB", (64, 64), (10, 120, 200)).save(buffer, format=image_format)
        inspect_image(buffer, max_pixels=10**6)


def probe(warm_up_pk: int, large_pk: int) -> dict[str, Any]:
    """Ingest the warm-up job, then measure the ingest of the large one (in the subprocess)."""
    from django_neuraldraft import services
    from django_neuraldraft.models import Job

    services.ingest(Job.objects.get(pk=warm_up_pk))
    warm_up_pillow()
    job = Job.objects.get(pk=large_pk)
    before = reset_peak()
    version = services.ingest(job)
    peak = memory_status()["VmHWM"]
    return {"file_bytes": version.bytes, "rss_before": before, "rss_peak": peak}


def completed_job(sandbox: Any, key: str, prompt: str) -> Any:
    """A job for ``key`` completed at the sandbox and mirrored locally, not yet ingested."""
    from django_neuraldraft import services

    job = services.submit(services.request_generation(key, prompt=prompt))
    sandbox.finish_job(job.remote_id)
    job = services.refresh_job(job)
    if job.status != "completed":
        raise RuntimeError(f"Job {job.remote_id} ended {job.status}: {job.error_message}")
    return job


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def serve_directory(directory: Path) -> Iterator[str]:
    """Serve ``directory`` over HTTP on a free loopback port; yield the base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=directory))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def noise(side: int, mode: str = "RGB") -> Any:
    from PIL import Image

    return Image.frombytes(mode, (side, side), os.urandom(side * side * len(mode)))


def write_image(path: Path, case: str, size: int) -> None:
    """Write the ``case`` image of random pixels; ``size`` is the target for sized cases."""
    if case == "noise":
        noise(math.isqrt(size // 3)).save(path, format="PNG", compress_level=1)
    elif case == "jpeg":
        # Random pixels at quality 95 take about 1.17 bytes each.
        noise(math.isqrt(int(size / 1.17))).save(path, format="JPEG", quality=95)
    elif case == "jpeg-progressive":
        # 0.74 bytes a pixel at quality 50 (Pillow cannot write this one at 95).
        side = min(math.isqrt(int(size / 0.74)), PROGRESSIVE_SIDE)
        noise(side).save(path, format="JPEG", quality=50, progressive=True, subsampling=0)
    elif case == "png":
        noise(COLOUR_LIMIT_SIDE, "RGBA").save(path, format="PNG", compress_level=1)
    elif case == "png-rgb":
        noise(COLOUR_LIMIT_SIDE).save(path, format="PNG", compress_level=1)
    elif case == "webp":
        noise(COLOUR_LIMIT_SIDE).save(path, format="WEBP", lossless=True, method=0, quality=0)
    elif case == "gif":
        image = noise(COLOUR_LIMIT_SIDE, "P")
        image.putpalette(os.urandom(3 * 256))
        image.save(path, format="GIF")
    else:
        raise ValueError(case)


def measure(bench: Any, file_server: str, files: Path, case: str, size: int) -> dict[str, Any]:
    """Ingest one large ``case`` image in a probe subprocess; return its figures."""
    from django.db import connections

    sandbox = bench.sandbox
    warm_up = completed_job(sandbox, f"bench.warm-up-{case}", f"A small warm-up picture {case}")
    if case != "padded":
        name = f"{case}.{ {'jpeg': 'jpg', 'webp': 'webp', 'gif': 'gif'}.get(case, 'png') }"
        write_image(files / name, case, size)
        sandbox.set_fault("result_url", count=1, url=f"{file_server}/{name}")
    large = completed_job(sandbox, f"bench.large-{case}", f"A very large picture {case}")
    if case == "padded":
        large_path = large.result["url"].removeprefix(sandbox.origin)
        sandbox.set_fault("oversized_image", path=large_path, bytes=size)
    connections.close_all()
    note(f"ingesting the {case} image in a probe subprocess")
    completed = subprocess.run(
        [sys.executable, __file__, "--probe", str(warm_up.pk), str(large.pk)],
        env=subprocess_env(bench.config),
        stdout=subprocess.PIPE,
        timeout=PROBE_TIMEOUT,
        check=True,
    )
    measured = json.loads(completed.stdout.decode().strip().splitlines()[-1])
    growth = measured["rss_peak"] - measured["rss_before"]
    fraction = growth / measured["file_bytes"]
    return {
        "file_bytes": measured["file_bytes"],
        "rss_before_bytes": measured["rss_before"],
        "rss_peak_bytes": measured["rss_peak"],
        "rss_growth_bytes": growth,
        "rss_growth_fraction": round(fraction, 4),
        "goal": GOALS[case],
        "goal_met": fraction <= GOALS[case],
    }


def run(megabytes: float, image: str) -> dict[str, Any]:
    size = int(megabytes * 1024 * 1024)
    settings = {"MAX_DOWNLOAD_BYTES": 2 * size}
    cases = CASES if image == "all" else (image,)
    results = {}
    with bench_project(job_seconds=1.0, neuraldraft=settings) as bench:
        files = Path(bench.config["workdir"]) / "files"
        files.mkdir()
        with serve_directory(files) as file_server:
            for case in cases:
                results[case] = measure(bench, file_server, files, case, size)
                for path in files.iterdir():
                    path.unlink()
    return {
        "bench": "download_memory",
        "megabytes": megabytes,
        "cases": results,
        "rss_growth_fractions": {case: r["rss_growth_fraction"] for case, r in results.items()},
        "goals_met": all(r["goal_met"] for r in results.values()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--megabytes", type=float, default=40.0)
    parser.add_argument("--image", choices=["all", *CASES], default="all")
    parser.add_argument("--probe", nargs=2, type=int, metavar=("WARM_UP_PK", "LARGE_PK"))
    args = parser.parse_args(argv)
    if args.probe:
        emit(probe(*args.probe))
        return 0
    emit(run(args.megabytes, args.image))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

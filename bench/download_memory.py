"""Benchmark: peak memory of ingesting one large image, against the image's size.

A job completed at the sandbox is ingested by ``services.ingest`` in a fresh
subprocess (the probe): download, verification with Pillow, storage save and
binding, as a worker would. The image is about 40 MB (``--megabytes``):

- ``--image padded`` (default): the sandbox's ``oversized_image`` fault, a
  valid 8x8 PNG padded to size with one large ancillary chunk;
- ``--image noise``: a PNG of random pixels as Pillow writes it (64 KB IDAT
  chunks), served from a loopback file server through the sandbox's
  ``result_url`` fault.

Before the large ingest the probe ingests an ordinary image, so that imports,
connections and Pillow's plugins are in place, then resets its peak RSS
(``/proc/self/clear_refs``). It reports, as one JSON line on stdout,
``rss_growth_fraction``: (peak RSS during the ingest - RSS before it) / file
size. Goal (issue 3): <= 0.10.

Run from a checkout: ``python bench/download_memory.py [--megabytes 40] [--image noise]``.
"""

from __future__ import annotations

import argparse
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

GOAL = 0.10
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


def probe(warm_up_pk: int, large_pk: int) -> dict[str, Any]:
    """Ingest the warm-up job, then measure the ingest of the large one (in the subprocess)."""
    from django_neuraldraft import services
    from django_neuraldraft.models import Job

    services.ingest(Job.objects.get(pk=warm_up_pk))
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


def write_noise_png(path: Path, size: int) -> None:
    """Write a PNG of random RGB pixels of about ``size`` bytes (noise does not compress)."""
    from PIL import Image

    side = math.isqrt(size // 3)
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(
        path, format="PNG", compress_level=1
    )


def run(megabytes: float, image: str) -> dict[str, Any]:
    from django.db import connections

    size = int(megabytes * 1024 * 1024)
    settings = {"MAX_DOWNLOAD_BYTES": 2 * size}
    with bench_project(job_seconds=1.0, neuraldraft=settings) as bench:
        sandbox = bench.sandbox
        warm_up = completed_job(sandbox, "bench.warm-up", "A small warm-up picture")
        files = Path(bench.config["workdir"]) / "files"
        files.mkdir()
        with serve_directory(files) as file_server:
            if image == "noise":
                write_noise_png(files / "noise.png", size)
                sandbox.set_fault("result_url", count=1, url=f"{file_server}/noise.png")
            large = completed_job(sandbox, "bench.large", "A very large picture")
            if image == "padded":
                large_path = large.result["url"].removeprefix(sandbox.origin)
                sandbox.set_fault("oversized_image", path=large_path, bytes=size)
            connections.close_all()
            note(f"ingesting a {megabytes:g} MB {image} image in a probe subprocess")
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
        "bench": "download_memory",
        "image": image,
        "file_bytes": measured["file_bytes"],
        "rss_before_bytes": measured["rss_before"],
        "rss_peak_bytes": measured["rss_peak"],
        "rss_growth_bytes": growth,
        "rss_growth_fraction": round(fraction, 4),
        "goals_met": fraction <= GOAL,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--megabytes", type=float, default=40.0)
    parser.add_argument("--image", choices=["padded", "noise"], default="padded")
    parser.add_argument("--probe", nargs=2, type=int, metavar=("WARM_UP_PK", "LARGE_PK"))
    args = parser.parse_args(argv)
    if args.probe:
        emit(probe(*args.probe))
        return 0
    emit(run(args.megabytes, args.image))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

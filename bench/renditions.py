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

Run from a checkout: ``python bench/renditions.py [--runs 5]``.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time
from collections.abc import Callable
from typing import Any

import requests
from _support import Bench, bench_project, emit, note

#: Each result key with a goal, and the largest value that meets it.
GOALS = {"ingest_s_per_image": 3.0}


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


#: The measurements, in order; each takes the project and the parsed arguments.
MEASUREMENTS: tuple[Callable[[Bench, argparse.Namespace], dict[str, Any]], ...] = (ingest,)


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

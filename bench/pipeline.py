"""Benchmark: many generations submitted at once, followed by a real worker until all are bound.

Against the sandbox (jobs of ``--job-seconds``, 1 s by default), a prefork
worker (concurrency 4) on the Redis broker and a SQLite database in WAL
mode, it submits 200 generations as fast as ``services.request_generation``
allows and waits until every key shows its image. Before them it makes
``--history`` images (20 by default), not measured, so that the site has
the history of finished jobs that a site in use has and that a job's first
poll reads; ``--history 0`` measures a new site's first batch. It reports,
as one JSON line on stdout:

- ``wall_s``: from the first submit to the last image bound;
- ``requests_per_job``: API requests (``/v1/...``) per job;
  ``http_requests_per_job`` counts the CDN downloads too;
- ``p50_delay_s`` / ``p95_delay_s`` / ``max_delay_s``: from the moment a job
  completed at the sandbox to the creation of its ``ImageVersion``;
- ``polls_per_job``, ``submit_s`` (time to submit them all), ``jobs``;
- ``renditions_s``: from the first submit until every version's renditions
  are made (their chains ended), waited for after the last image is bound;
- ``cpu_s``: CPU seconds of this process (sandbox, submits) and of the worker.

The cache is Redis, seen by every process, as on a site with a worker (so
``RENDITION_CONCURRENCY`` caps the renditions steps of the whole worker);
``--cache locmem`` gives each process its own, Django's default, where the
cap holds per worker process.

With ``--webhooks`` the endpoint is registered with the sandbox, a threaded
WSGI server in this process runs the app's receiver, and polling is only the
safety net (``WEBHOOK_SAFETY_POLL``, one hour here): the sandbox's deliveries
drive the pipeline.

Goals: polling (issues 3 and 9) ``wall_s`` <= 14 + job seconds,
``requests_per_job`` <= 5, ``p95_delay_s`` <= 3; with webhooks (issue 9)
``requests_per_job`` <= 3 and ``p95_delay_s`` <= 0.5.

Run from a checkout with Redis on 127.0.0.1:6379 (database 15 is emptied):
``python bench/pipeline.py [--jobs 200] [--concurrency 4] [--job-seconds 60] [--webhooks]``.
See docs/benchmarks.rst.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from _support import Bench, app as bench_app, bench_project, emit, note
from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler

from django_neuraldraft.client import NeuralDraftClient
from django_neuraldraft.sandbox import SandboxServer
from django_neuraldraft.testing import SANDBOX_API_KEY

#: Polls with webhooks on: a safety net that never fires during a run.
SAFETY_POLL_SECONDS = 3600


def goals(*, webhooks: bool, job_seconds: float) -> dict[str, float]:
    if webhooks:
        return {"requests_per_job": 3.0, "p95_delay_s": 0.5}
    return {"wall_s": 14.0 + job_seconds, "requests_per_job": 5.0, "p95_delay_s": 3.0}


def percentile(values: list[float], share: float) -> float:
    """The ``share`` quantile (0..1) with linear interpolation, as NumPy's default."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * share
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class Receiver:
    """The app's webhook receiver on a free loopback port, served from this process.

    The socket is bound before Django is set up, so that the endpoint can be
    registered (and its secret handed to the worker) before the worker starts.
    """

    def __init__(self) -> None:
        self.server = ThreadedWSGIServer(("127.0.0.1", 0), _QuietHandler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/webhook/"

    def register(self, sandbox: SandboxServer) -> dict[str, Any]:
        """Register with the sandbox; return the settings that turn webhooks on."""
        with NeuralDraftClient(api_key=SANDBOX_API_KEY, base_url=sandbox.base_url) as client:
            endpoint = client.create_webhook_endpoint(self.url)
        note(f"webhook endpoint {endpoint['id']} -> {self.url}")
        return {
            "WEBHOOK_SECRET": endpoint["signing_secret"],
            "WEBHOOK_SAFETY_POLL": SAFETY_POLL_SECONDS,
        }

    @contextmanager
    def serving(self) -> Iterator[None]:
        from django.conf import settings
        from django.core.wsgi import get_wsgi_application

        settings.ROOT_URLCONF = "django_neuraldraft.urls"
        settings.ALLOWED_HOSTS = ["127.0.0.1"]
        # The server's threads publish the receiver's task: Celery's current app is per thread.
        bench_app.set_default()
        self.server.set_app(get_wsgi_application())
        thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05})
        thread.start()
        try:
            yield
        finally:
            self.server.shutdown()
            self.server.server_close()
            thread.join(timeout=5)


def generate_batch(
    bench: Bench, prefix: str, jobs: int, timeout: float, renditions_timeout: float
) -> dict[str, float]:
    """Submit ``jobs`` generations, wait until they are bound and have renditions.

    Returns the times (Unix) it started, finished submitting and had all
    renditions made. A batch ends when every key shows its image or its job
    failed.
    """
    from django_neuraldraft import services
    from django_neuraldraft.models import ImageKey, ImageVersion, Job

    image_keys = ImageKey.objects.bulk_create(
        ImageKey(key=f"{prefix}.{n:04d}", prompt=f"Benchmark picture {n}: a harbour at dawn")
        for n in range(jobs)
    )
    batch = ImageKey.objects.filter(key__startswith=f"{prefix}.")
    started = time.time()
    for image_key in image_keys:
        services.request_generation(image_key)
    submitted = time.time()
    note(f"submitted {jobs} generations ({prefix}) in {submitted - started:.2f} s")

    deadline = time.monotonic() + timeout
    while True:
        bound = batch.filter(current__isnull=False).count()
        failed = Job.objects.filter(image_key__in=batch, status="failed").count()
        if bound + failed >= jobs:
            break
        if time.monotonic() > deadline:
            tail = bench.worker.log_tail() if bench.worker else ""
            raise TimeoutError(f"{bound}/{jobs} images bound after {timeout} s.\n{tail}")
        time.sleep(0.05)

    deadline = time.monotonic() + renditions_timeout
    while ImageVersion.objects.exclude(chain_token="").exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"Renditions still being made {renditions_timeout} s later.")
        time.sleep(0.05)
    return {"started": started, "submitted": submitted, "renditions_done": time.time()}


def run(
    bench: Bench, jobs: int, history: int, timeout: float, renditions_timeout: float
) -> dict[str, Any]:
    """Make ``history`` images first if asked, then measure a batch of ``jobs``."""
    from django.db.models import Avg

    from django_neuraldraft.models import ImageVersion, Job

    if history:
        generate_batch(bench, "history", history, timeout, renditions_timeout)
    measured_from = len(bench.sandbox.requests)
    times = generate_batch(bench, "bench", jobs, timeout, renditions_timeout)
    started = times["started"]

    measured = Job.objects.filter(image_key__key__startswith="bench.")
    completed_at = bench.sandbox.completion_times()
    bound_at = {
        remote_id: created.timestamp()
        for remote_id, created in ImageVersion.objects.filter(job__in=measured).values_list(
            "job__remote_id", "created_at"
        )
    }
    delays = [bound_at[job_id] - completed_at[job_id] for job_id in bound_at]
    requests = bench.sandbox.requests[measured_from:]
    api_requests = sum(
        request.path.startswith("/v1/") and not request.path.startswith("/v1/webhook-endpoints")
        for request in requests
    )
    return {
        "bench": "pipeline",
        "jobs": jobs,
        "history": history,
        "bound": len(bound_at),
        "failed": measured.filter(status="failed").count(),
        "wall_s": round(max(bound_at.values()) - started, 3),
        "submit_s": round(times["submitted"] - started, 3),
        "renditions_s": round(times["renditions_done"] - started, 3),
        "requests_per_job": round(api_requests / jobs, 3),
        "http_requests_per_job": round(len(requests) / jobs, 3),
        "polls_per_job": round(measured.aggregate(polls=Avg("polls"))["polls"], 3),
        "p50_delay_s": round(statistics.median(delays), 3),
        "p95_delay_s": round(percentile(delays, 0.95), 3),
        "max_delay_s": round(max(delays), 3),
    }


def cpu_seconds(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--job-seconds", type=float, default=1.0, help="how long a job runs")
    parser.add_argument(
        "--history",
        type=int,
        default=20,
        help="images made first, not measured, as on a site in use (0: a new site)",
    )
    parser.add_argument(
        "--webhooks", action="store_true", help="drive the pipeline by the sandbox's webhooks"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        help="seconds to wait for a batch to be bound (default: 60 + 3 x job seconds)",
    )
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument(
        "--cache",
        choices=["redis", "locmem"],
        default="redis",
        help="Redis, seen by every process (default), or each process's own LocMemCache",
    )
    parser.add_argument(
        "--renditions-timeout",
        type=float,
        default=900.0,
        help="seconds to wait for the renditions after the last image is bound",
    )
    parser.add_argument("--worker-loglevel", default="WARNING")
    parser.add_argument(
        "--image-format",
        choices=["jpeg", "png"],
        default="jpeg",
        help="what the sandbox generates; JPEG like the API docs' examples (default)",
    )
    parser.add_argument(
        "--setting",
        action="append",
        default=[],
        metavar="KEY=JSON",
        help="override a NEURALDRAFT setting, e.g. POLL_INITIAL=1 (repeatable)",
    )
    args = parser.parse_args(argv)
    overrides = {}
    for item in args.setting:
        key, _, value = item.partition("=")
        overrides[key] = json.loads(value)

    timeout = args.timeout or 60.0 + 3 * args.job_seconds
    receiver = Receiver() if args.webhooks else None
    with bench_project(
        job_seconds=args.job_seconds,
        database=args.database,
        neuraldraft=overrides,
        neuraldraft_from_sandbox=receiver.register if receiver else None,
        worker_concurrency=args.concurrency,
        worker_loglevel=args.worker_loglevel,
        image_format=args.image_format,
        shared_cache=args.cache == "redis",
    ) as bench:
        note(f"sandbox at {bench.sandbox.base_url}, worker concurrency {args.concurrency}")
        own_cpu = cpu_seconds(resource.RUSAGE_SELF)
        if receiver is None:
            result = run(bench, args.jobs, args.history, timeout, args.renditions_timeout)
        else:
            with receiver.serving():
                result = run(bench, args.jobs, args.history, timeout, args.renditions_timeout)
                result["deliveries_failed"] = sum(
                    delivery.status != "success" for delivery in bench.sandbox.deliveries
                )
        own_cpu = cpu_seconds(resource.RUSAGE_SELF) - own_cpu
    result["cpu_s"] = {
        "bench_process": round(own_cpu, 2),
        "worker": round(cpu_seconds(resource.RUSAGE_CHILDREN), 2),
    }
    result["goals_met"] = all(
        result[name] <= goal
        for name, goal in goals(webhooks=args.webhooks, job_seconds=args.job_seconds).items()
    )
    result.update(
        concurrency=args.concurrency,
        job_seconds=args.job_seconds,
        webhooks=args.webhooks,
        database=args.database,
        shared_cache=args.cache == "redis",
    )
    emit(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

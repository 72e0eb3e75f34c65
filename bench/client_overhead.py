"""What NeuralDraftClient adds per call: 500 ``get_job`` calls against 500 bare requests GETs.

Both sides hit the same sandbox job over one kept-alive connection each, with the
same headers and timeout; the bare side also parses the JSON, as any caller
would. 50 rounds of 10 calls alternate which side goes first, so drift in the
machine's speed falls on both. Prints one JSON line: ``client_s`` and ``bare_s``
are the totals, ``ratio`` the median over rounds of client time / bare time (a
busy machine skews a total more than a median), ``total_ratio`` the ratio of totals.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable

import requests

from django_neuraldraft.client import NeuralDraftClient
from django_neuraldraft.testing import SANDBOX_API_KEY, run_sandbox

CALLS = 500
ROUNDS = 50
WARMUP = 50
TIMEOUT = (5, 30)


def timed(call: Callable[[], object], times: int) -> float:
    start = time.perf_counter()
    for _ in range(times):
        call()
    return time.perf_counter() - start


def main() -> dict[str, object]:
    # No rate limit: the bench measures the client, not the bucket. A long job stays
    # "processing", so every read costs the server the same.
    with run_sandbox(job_seconds=3600, rate_limit=None) as server:
        client = NeuralDraftClient(SANDBOX_API_KEY, server.base_url, timeout=TIMEOUT)
        job_id = client.create_image("Benchmark", key="bench.overhead").id
        url = f"{server.base_url}/jobs/{job_id}"

        bare = requests.Session()
        bare.headers["Authorization"] = f"Bearer {SANDBOX_API_KEY}"
        bare.headers["User-Agent"] = client.user_agent
        bare.headers["Accept"] = "application/json, application/problem+json"

        def bare_get_job() -> object:
            response = bare.get(url, timeout=TIMEOUT)
            response.raise_for_status()
            return response.json()

        def client_get_job() -> object:
            return client.get_job(job_id)

        timed(client_get_job, WARMUP)
        timed(bare_get_job, WARMUP)
        per_round = CALLS // ROUNDS
        client_times, bare_times = [], []
        for round_number in range(ROUNDS):
            if round_number % 2:
                bare_times.append(timed(bare_get_job, per_round))
                client_times.append(timed(client_get_job, per_round))
            else:
                client_times.append(timed(client_get_job, per_round))
                bare_times.append(timed(bare_get_job, per_round))
        client.close()
        bare.close()

    client_s, bare_s = sum(client_times), sum(bare_times)
    return {
        "calls": CALLS,
        "rounds": ROUNDS,
        "client_s": round(client_s, 4),
        "bare_s": round(bare_s, 4),
        "ratio": round(
            statistics.median(c / b for c, b in zip(client_times, bare_times, strict=True)), 4
        ),
        "total_ratio": round(client_s / bare_s, 4),
        "overhead_us_per_call": round((client_s - bare_s) / CALLS * 1e6, 1),
    }


if __name__ == "__main__":
    print(json.dumps(main()))

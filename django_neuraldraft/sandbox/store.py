"""All mutable sandbox state behind one lock: jobs, images, webhooks, credits, limits, faults.

One :class:`threading.Condition` guards everything. It doubles as the wake-up
signal for the three kinds of waiter: SSE streams (a job moved), idempotent
requests (the first request with their key finished) and the webhook
dispatcher (an attempt or a job end is due). Work that can be slow (rendering,
posting a webhook, writing to a socket) always happens outside the lock.
"""

from __future__ import annotations

import dataclasses
import hashlib
import heapq
import itertools
import threading
import time
from typing import Any

from django_neuraldraft.sandbox import webhooks
from django_neuraldraft.sandbox.faults import JOB_KINDS, Fault, FaultSet
from django_neuraldraft.sandbox.idempotency import IdempotencyStore, Record
from django_neuraldraft.sandbox.ids import new_id, random_base62
from django_neuraldraft.sandbox.images import (
    EXTENSIONS,
    RENDER_FORMATS,
    UploadInfo,
    image_size,
    render_fingerprint,
    render_image,
)
from django_neuraldraft.sandbox.jobs import TERMINAL_STATUSES, Job, StreamEvent
from django_neuraldraft.sandbox.media import PROJECT_ID, Blob, StoredImage, cdn_path
from django_neuraldraft.sandbox.messages import Request, Response
from django_neuraldraft.sandbox.options import Options
from django_neuraldraft.sandbox.problems import ProblemError, not_found
from django_neuraldraft.sandbox.ratelimit import TokenBucket
from django_neuraldraft.sandbox.recording import RecordedRequest, RequestLog
from django_neuraldraft.sandbox.renderer import Renderer
from django_neuraldraft.sandbox.validation import DeliveryQuery, Generation

#: Credits per generation (the ``POST /images`` pages' figure, §12.3) and per upload.
GENERATION_COST = 40
UPLOAD_COST = 1


class Store:
    """The sandbox's state. Public methods take the lock; ``_`` methods expect it held."""

    def __init__(self, options: Options) -> None:
        self.options = options
        #: ``http://host:port``, set by the server once its socket is bound.
        self.origin = ""
        #: Renders images while their jobs run; set by the server when it starts.
        self.renderer: Renderer | None = None
        self.cond = threading.Condition()
        self.log = RequestLog()
        self._stopping = False
        self._generation = 0
        self._sequence = itertools.count()
        self._clear()

    def _clear(self) -> None:
        self._generation += 1
        self.jobs: dict[str, Job] = {}
        self.images: dict[str, StoredImage] = {}
        self.blobs: dict[str, Blob] = {}
        #: Bytes rendered ahead by the renderer, by CDN path, until their job ends.
        self.renders: dict[str, bytes] = {}
        self.endpoints: dict[str, webhooks.Endpoint] = {}
        self.deliveries: dict[str, webhooks.Delivery] = {}
        self.credits = self.options.credits
        self.idempotency = IdempotencyStore()
        burst = self.options.burst
        limit = self.options.rate_limit
        self.bucket = (
            TokenBucket(limit, burst) if limit is not None and burst is not None else None
        )
        self.faults = FaultSet()
        self.log.clear()
        # Min-heaps of (due time, tie-breaker, id).
        self._job_ends: list[tuple[float, int, str]] = []
        self._attempts_due: list[tuple[float, int, str]] = []

    def reset(self) -> None:
        with self.cond:
            self._clear()
            self.cond.notify_all()

    def stop(self) -> None:
        """Wake every waiter for good: streams end, the dispatcher returns."""
        with self.cond:
            self._stopping = True
            self.cond.notify_all()

    def begin(
        self, request: Request, kinds: frozenset[str]
    ) -> tuple[RecordedRequest, list[Fault]]:
        """Log ``request`` and take the faults of ``kinds`` that hit it, in one lock round."""
        with self.cond:
            return self.log.record(request), self.faults.take(kinds, request.method, request.path)

    def take_faults(self, kinds: frozenset[str], method: str, path: str) -> list[Fault]:
        with self.cond:
            return self.faults.take(kinds, method, path)

    def add_fault(self, fault: Fault) -> None:
        with self.cond:
            self.faults.add(fault)

    def clear_faults(self) -> None:
        with self.cond:
            self.faults.clear()

    def recorded(self) -> list[RecordedRequest]:
        with self.cond:
            return self.log.entries()

    def admit(self) -> tuple[bool, dict[str, str], int]:
        """Spend a token: ``(allowed, X-RateLimit headers, Retry-After seconds if refused)``."""
        with self.cond:
            if self.bucket is None:
                return True, {}, 0
            allowed = self.bucket.take()
            retry_after = 0 if allowed else self.bucket.retry_after()
            return allowed, self.bucket.headers(), retry_after

    def rate_headers(self) -> dict[str, str]:
        """The ``X-RateLimit-*`` headers without spending a token (for refused requests)."""
        with self.cond:
            return self.bucket.headers() if self.bucket is not None else {}

    def claim(self, key: str, fingerprint: str) -> Record:
        """Return the key's record, waiting while another request with the key is in flight.

        A record with a ``response`` is a replay. One without is the caller's
        own fresh claim, to :meth:`fulfil` or :meth:`abandon`. A different
        fingerprint is the 409 ``idempotency_conflict``.
        """
        with self.cond:
            while True:
                record = self.idempotency.get(key, time.time())
                if record is None:
                    self.idempotency.reserve(key, fingerprint, time.time())
                    return self.idempotency.records[key]
                if record.fingerprint != fingerprint:
                    raise ProblemError(
                        409,
                        "This Idempotency-Key was used with a different request; "
                        "send the identical request or use a fresh key.",
                        code="idempotency_conflict",
                    )
                if record.response is not None:
                    return record
                if self._stopping:
                    raise ProblemError(503, "The sandbox is shutting down.")
                self.cond.wait()

    def fulfil(self, key: str, record: Record, response: Response) -> None:
        with self.cond:
            if self.idempotency.records.get(key) is record:
                self.idempotency.complete(key, response)
            self.cond.notify_all()

    def abandon(self, key: str, record: Record) -> None:
        with self.cond:
            if self.idempotency.records.get(key) is record:
                self.idempotency.release(key)
            self.cond.notify_all()

    def _charge(self, cost: int) -> None:
        if self.credits < cost:
            raise ProblemError(
                402,
                f"This operation costs {cost} credits; the project has {self.credits}.",
                code="insufficient_credits",
            )
        self.credits -= cost

    def project(self) -> dict[str, Any]:
        with self.cond:
            return {"id": PROJECT_ID, "name": "Sandbox", "plan": "scale", "credits": self.credits}

    def create_job(self, generation: Generation, request: Request) -> Job:
        """Charge, bake in any job faults, and queue a job; its answer is ``initial_json()``."""
        size = image_size(generation.aspect_ratio, self.options.image_long_edge)
        digest = render_fingerprint(
            generation.prompt, generation.style, generation.aspect_ratio, size
        )
        mime_type, extension = RENDER_FORMATS[self.options.image_format]
        path = cdn_path(generation.key or "image", digest, extension)
        with self.cond:
            self._charge(GENERATION_COST)
            faults = self.faults.take(JOB_KINDS, request.method, request.path)
            failure = next((f.params for f in faults if f.kind == "job_failure"), None)
            url = next(
                (f.params["url"] for f in faults if f.kind == "result_url"), self.origin + path
            )
            job = Job(
                id=new_id("job"),
                prompt=generation.prompt,
                style=generation.style,
                aspect_ratio=generation.aspect_ratio,
                key=generation.key,
                width=size[0],
                height=size[1],
                cdn_path=path,
                mime_type=mime_type,
                image_format=self.options.image_format,
                result_url=url,
                created_at=time.time(),
                duration=self.options.job_seconds,
                failure=dict(failure) if failure else None,
            )
            self.jobs[job.id] = job
            heapq.heappush(self._job_ends, (job.due_at, next(self._sequence), job.id))
            self.cond.notify_all()
        if self.renderer is not None and path not in self.blobs and failure is None:
            self.renderer.submit(path, job.render_args)
        return job

    def keep_render(self, path: str, data: bytes) -> None:
        """Keep bytes the renderer made, for the blob of the job that asked for them."""
        with self.cond:
            blob = self.blobs.get(path)
            if blob is None:
                self.renders[path] = data
            elif blob.data is None:
                blob.data = data

    def _settle(self, now: float) -> None:
        """End every job whose run is over, in the order they end."""
        while self._job_ends and self._job_ends[0][0] <= now:
            due, _, job_id = heapq.heappop(self._job_ends)
            job = self.jobs.get(job_id)
            if job is not None and job.final_status is None:
                self._finalise(job, due)

    def _finalise(self, job: Job, at: float) -> None:
        job.end(job.planned_status, at)
        if job.final_status == "completed":
            blob = self.blobs.setdefault(
                job.cdn_path,
                Blob(
                    job.cdn_path,
                    job.mime_type,
                    job.width,
                    job.height,
                    data=self.renders.pop(job.cdn_path, None),
                    render=job.render_args,
                ),
            )
            if job.key is not None:
                self._put_image(job.key, job.result_url, blob, generated=True, at=at)
            self._announce(job, at)
        self.cond.notify_all()

    def _job(self, job_id: str) -> Job:
        job = self.jobs.get(job_id)
        if job is None:
            raise not_found(f"No job {job_id!r} in this project.")
        return job

    def job_json(self, job_id: str) -> dict[str, Any]:
        with self.cond:
            now = time.time()
            self._settle(now)
            return self._job(job_id).to_json(now)

    def cancel_job(self, job_id: str) -> dict[str, Any]:
        with self.cond:
            now = time.time()
            self._settle(now)
            job = self._job(job_id)
            status = job.status_at(now)
            if status in TERMINAL_STATUSES:
                raise ProblemError(
                    409, f"The job is already {status}; only a running job can be cancelled."
                )
            job.end("cancelled", now)
            self.cond.notify_all()
            return job.to_json(now)

    def finish_job(self, job_id: str) -> dict[str, Any]:
        """End a running job now with its planned outcome; ``KeyError`` for an unknown id."""
        with self.cond:
            now = time.time()
            self._settle(now)
            job = self.jobs[job_id]
            if job.status_at(now) not in TERMINAL_STATUSES:
                self._finalise(job, now)
            return job.to_json(now)

    def completion_times(self) -> dict[str, float]:
        with self.cond:
            self._settle(time.time())
            return {
                job_id: job.ended_at if job.ended_at is not None else job.due_at
                for job_id, job in self.jobs.items()
            }

    def jobs_json(self) -> dict[str, dict[str, Any]]:
        with self.cond:
            now = time.time()
            self._settle(now)
            return {job_id: job.to_json(now) for job_id, job in self.jobs.items()}

    def next_stream_events(
        self, job_id: str, last_id: int, until: float
    ) -> tuple[list[StreamEvent], bool] | None:
        """Wait for events after ``last_id``: ``(events, terminal)``, or None if the job is gone.

        Returns ``([], False)`` when the monotonic deadline ``until`` passes
        first, which is the stream's cue for a heartbeat.
        """
        with self.cond:
            while not self._stopping:
                now = time.time()
                self._settle(now)
                job = self.jobs.get(job_id)
                if job is None:
                    return None
                events, terminal = job.stream_events(now)
                fresh = [event for event in events if event.id > last_id]
                if fresh or terminal:
                    return fresh, terminal
                remaining = until - time.monotonic()
                if remaining <= 0:
                    return [], False
                self.cond.wait(min(remaining, job.next_change_at(now) - now))
            return None

    def _put_image(
        self, key: str, url: str, blob: Blob, *, generated: bool, at: float
    ) -> StoredImage:
        existing = self.images.get(key)
        image = StoredImage(key, url, blob, generated, existing.created_at if existing else at, at)
        self.images[key] = image
        return image

    def upload(self, key: str, data: bytes, info: UploadInfo) -> StoredImage:
        """Store uploaded bytes under ``key`` (replacing any image there) for one credit."""
        path = cdn_path(key, hashlib.sha256(data).hexdigest(), EXTENSIONS[info.mime_type])
        with self.cond:
            self._charge(UPLOAD_COST)
            blob = Blob(path, info.mime_type, info.width, info.height, data=data)
            self.blobs[path] = blob
            return self._put_image(key, self.origin + path, blob, generated=False, at=time.time())

    def image(self, key: str) -> StoredImage:
        with self.cond:
            self._settle(time.time())
            image = self.images.get(key)
        if image is None:
            raise not_found(f"No image with key {key!r} in this project.")
        return image

    def blob(self, path: str) -> Blob | None:
        with self.cond:
            self._settle(time.time())
            return self.blobs.get(path)

    def blob_bytes(self, blob: Blob) -> bytes:
        """The blob's bytes, rendering them on first use (outside the lock) and keeping them."""
        if blob.data is None and blob.render is not None:
            data = render_image(*blob.render)
            with self.cond:
                if blob.data is None:
                    blob.data = data
        return blob.data or b""

    def create_endpoint(self, fields: dict[str, Any]) -> dict[str, Any]:
        endpoint = webhooks.Endpoint(
            id=new_id("whe"),
            url=fields["url"],
            events=fields["events"],
            is_active=fields.get("is_active", True),
            signing_secret="whsec_" + random_base62(32),
            created_at=time.time(),
        )
        with self.cond:
            self.endpoints[endpoint.id] = endpoint
        return endpoint.to_json(with_secret=True)

    def update_endpoint(self, endpoint_id: str, fields: dict[str, Any]) -> dict[str, Any]:
        with self.cond:
            endpoint = self.endpoints.get(endpoint_id)
            if endpoint is None:
                raise not_found(f"No webhook endpoint {endpoint_id!r} in this project.")
            for name, value in fields.items():
                setattr(endpoint, name, value)
            return endpoint.to_json()

    def _announce(self, job: Job, at: float) -> None:
        """Queue an ``image.generated`` delivery to each subscribed endpoint (lock held)."""
        targets = [e for e in self.endpoints.values() if e.subscribes(webhooks.IMAGE_GENERATED)]
        if not targets:
            return
        body = webhooks.image_generated_body(job.id, job.result, at)
        for endpoint in targets:
            delivery = webhooks.Delivery(
                new_id("whd"), endpoint.id, webhooks.IMAGE_GENERATED, body, at
            )
            self.deliveries[delivery.id] = delivery
            self._schedule(delivery, at)

    def _schedule(self, delivery: webhooks.Delivery, due: float) -> None:
        delivery.next_retry_at = due
        heapq.heappush(self._attempts_due, (due, next(self._sequence), delivery.id))
        self.cond.notify_all()

    def list_deliveries(self, query: DeliveryQuery) -> dict[str, Any]:
        with self.cond:
            self._settle(time.time())
            matching = [
                delivery.to_json()
                for delivery in reversed(self.deliveries.values())
                if (query.endpoint_id is None or delivery.endpoint_id == query.endpoint_id)
                and (query.status is None or delivery.status == query.status)
                and (query.event is None or delivery.event == query.event)
            ]
        start = (query.page - 1) * query.page_size
        return {
            "data": matching[start : start + query.page_size],
            "meta": {"page": query.page, "page_size": query.page_size, "total": len(matching)},
        }

    def retry_delivery(self, delivery_id: str) -> dict[str, Any]:
        """Queue one more attempt now, whatever the delivery's status (the docs' manual retry)."""
        with self.cond:
            delivery = self.deliveries.get(delivery_id)
            if delivery is None:
                raise not_found(f"No webhook delivery {delivery_id!r} in this project.")
            delivery.status = "pending"
            self._schedule(delivery, time.time())
            return delivery.to_json()

    def deliveries_copy(self) -> list[webhooks.Delivery]:
        with self.cond:
            return [
                dataclasses.replace(d, attempted_at=list(d.attempted_at))
                for d in self.deliveries.values()
            ]

    def wait_for_attempt(self) -> webhooks.Attempt | None:
        """Block until a delivery attempt is due and return it; None once the sandbox stops.

        The dispatcher also wakes when a job's run ends, so jobs settle (and
        fire their webhooks) on time even if nobody is polling.
        """
        with self.cond:
            while not self._stopping:
                now = time.time()
                self._settle(now)
                if self._attempts_due and self._attempts_due[0][0] <= now:
                    _, _, delivery_id = heapq.heappop(self._attempts_due)
                    delivery = self.deliveries.get(delivery_id)
                    endpoint = self.endpoints.get(delivery.endpoint_id) if delivery else None
                    if delivery is None or endpoint is None or delivery.status != "pending":
                        continue
                    delivery.next_retry_at = None
                    return webhooks.Attempt(
                        delivery.id,
                        endpoint.url,
                        endpoint.signing_secret,
                        delivery.event,
                        delivery.payload,
                        self._generation,
                    )
                wakes = [heap[0][0] for heap in (self._job_ends, self._attempts_due) if heap]
                self.cond.wait(min(wakes) - now if wakes else None)
            return None

    def record_attempt(self, attempt: webhooks.Attempt, outcome: webhooks.Outcome) -> None:
        """Book an attempt's outcome and schedule the next try (or give up after the sixth)."""
        with self.cond:
            delivery = self.deliveries.get(attempt.delivery_id)
            if attempt.generation != self._generation or delivery is None:
                return
            now = time.time()
            delivery.attempts += 1
            delivery.attempted_at.append(now)
            delivery.response_status = outcome.status
            delivery.response_body = outcome.body
            if outcome.succeeded:
                delivery.status = "success"
                delivery.delivered_at = now
            elif delivery.attempts < webhooks.MAX_ATTEMPTS:
                delay = (
                    webhooks.RETRY_DELAYS[delivery.attempts - 1] * self.options.webhook_retry_scale
                )
                self._schedule(delivery, now + delay)
            else:
                delivery.status = "failed"
            endpoint = self.endpoints.get(delivery.endpoint_id)
            if endpoint is not None:
                endpoint.last_delivery_status = "success" if outcome.succeeded else "failed"
                endpoint.last_delivery_at = now
            self.cond.notify_all()

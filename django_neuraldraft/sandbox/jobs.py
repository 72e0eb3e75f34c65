"""Image generation jobs and their timeline, computed from the clock when read.

A job needs no thread to advance: its status, progress and steps are a
function of the time since it was created, until it is settled (completed or
failed at the end of its run), cancelled or finished early by a test. The same
timeline yields the SSE events, so a poller and a stream always agree.

Progress does not grow in a straight line, because a real generation does
not: it waits in a queue for a while, starts slowly (the model loads), runs
steadily while sampling and slows down again at the end (upscaling,
encoding). Each job draws its own queue time and pace from its id, so a run
is jittered yet the same job always tells the same story.
"""

from __future__ import annotations

import bisect
import random
from dataclasses import dataclass, field
from typing import Any

from django_neuraldraft.sandbox.timestamps import rfc3339

JOB_TYPE = "image.generate"
STEP_NAMES = ("compose", "render", "upscale")
TERMINAL_STATUSES = ("completed", "failed", "cancelled")

#: Seconds a job waits "pending" in the queue, drawn per job: a queue does not
#: wait longer for a longer job. Never more than ``MAX_PENDING_SHARE`` of the run.
PENDING_SECONDS = (0.5, 2.5)
MAX_PENDING_SHARE = 0.15
#: Relative time each tenth of the progress takes: slow start, steady middle, slow end.
TENTH_PACE = (1.5, 1.1, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.1, 1.3)
#: Each tenth's pace varies by up to this share, per job.
PACE_JITTER = 0.1
_TICKS = len(TENTH_PACE)

_MESSAGES = {
    "pending": "Queued",
    "compose": "Composing the scene",
    "render": "Rendering",
    "upscale": "Upscaling",
    "completed": "Image ready",
    "cancelled": "Cancelled",
}

#: The SSE ``error`` payload of a cancelled job (the docs are silent, §12.7).
CANCELLED_ERROR = {"code": "cancelled", "message": "Job was cancelled."}


@dataclass(frozen=True)
class ScriptEvent:
    """One SSE event of a job's run, ``offset`` seconds after creation."""

    offset: float
    event: str
    data: dict[str, Any]


@dataclass(frozen=True)
class StreamEvent:
    """A numbered SSE event; ids are stable, so ``Last-Event-ID`` can resume."""

    id: int
    event: str
    data: dict[str, Any]


def _step(name: str, *, completed: bool, active: bool) -> dict[str, Any]:
    return {"name": name, "completed": completed, "active": active}


@dataclass
class Job:
    """One generation job. Mutated only under the store's lock."""

    id: str
    prompt: str
    style: str | None
    aspect_ratio: str
    key: str | None
    width: int
    height: int
    #: The CDN path the finished image is served at.
    cdn_path: str
    #: The MIME type of a generated image, and the matching ``image_format`` to render.
    mime_type: str
    image_format: str
    #: What ``result.url`` reports (the CDN URL, or a ``result_url`` fault's).
    result_url: str
    created_at: float
    duration: float
    #: ``{"code", "message"}`` when a ``job_failure`` fault made this job fail.
    failure: dict[str, str] | None = None
    ended_at: float | None = None
    final_status: str | None = None
    #: Seconds after creation at which progress reaches 0, 10, ..., 100 %.
    knots: tuple[float, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        draw = random.Random(self.id)
        start = min(draw.uniform(*PENDING_SECONDS), MAX_PENDING_SHARE * self.duration)
        paces = [pace * draw.uniform(1 - PACE_JITTER, 1 + PACE_JITTER) for pace in TENTH_PACE]
        scale = (self.duration - start) / sum(paces)
        knots = [start]
        for pace in paces:
            knots.append(knots[-1] + pace * scale)
        knots[-1] = self.duration
        self.knots = tuple(knots)

    @property
    def render_args(self) -> tuple[str, str | None, str, tuple[int, int], str]:
        """What :func:`~.images.render_image` takes to draw this job's image."""
        return (
            self.prompt,
            self.style,
            self.aspect_ratio,
            (self.width, self.height),
            self.image_format,
        )

    @property
    def due_at(self) -> float:
        """When the run ends on its own."""
        return self.created_at + self.duration

    @property
    def planned_status(self) -> str:
        return "failed" if self.failure else "completed"

    def status_at(self, now: float) -> str:
        if self.final_status is not None:
            return self.final_status
        elapsed = now - self.created_at
        if elapsed >= self.duration:
            return self.planned_status
        return "processing" if elapsed >= self.knots[0] else "pending"

    def end(self, status: str, at: float) -> None:
        """Freeze the job in a terminal ``status`` at time ``at``."""
        self.final_status = status
        self.ended_at = at

    def _frozen_offset(self, now: float) -> float:
        """Seconds into the run that the job's view shows: now, or when it ended."""
        if self.status_at(now) in TERMINAL_STATUSES:
            ended = self.ended_at if self.ended_at is not None else self.due_at
            return ended - self.created_at
        return now - self.created_at

    def _percent(self, offset: float) -> float:
        """Progress at ``offset`` seconds into the run, unrounded (0 to 100)."""
        if self.duration <= 0 or offset < self.knots[0]:
            return 0.0
        if offset >= self.duration:
            return 100.0
        tenth = bisect.bisect_right(self.knots, offset) - 1
        low, high = self.knots[tenth], self.knots[tenth + 1]
        within = (offset - low) / (high - low) if high > low else 1.0
        # Unix-time floats carry ~1e-7 s of noise; rounding keeps 19.9999 from reading 19.
        return round(100 * (tenth + within) / _TICKS, 3)

    def _offset_at(self, percent: float) -> float:
        """Seconds into the run at which progress reaches ``percent`` (0 to 100)."""
        tenth = min(int(percent * _TICKS / 100), _TICKS - 1)
        low, high = self.knots[tenth], self.knots[tenth + 1]
        return low + (high - low) * (percent * _TICKS / 100 - tenth)

    def _step_index(self, offset: float) -> int:
        """Index of the step running at ``offset``, -1 while pending; each takes a third."""
        if self.duration <= 0 or offset < self.knots[0]:
            return -1
        return min(int(self._percent(offset) * len(STEP_NAMES) / 100), len(STEP_NAMES) - 1)

    def _progress(self, offset: float) -> int:
        return max(0, min(99, int(self._percent(offset))))

    @property
    def result(self) -> dict[str, Any]:
        return {
            "url": self.result_url,
            "key": self.key,
            "width": self.width,
            "height": self.height,
        }

    def initial_json(self) -> dict[str, Any]:
        """The view the creating request answers with: always ``pending``, even with 0 s jobs."""
        created = rfc3339(self.created_at)
        return {
            "id": self.id,
            "type": JOB_TYPE,
            "status": "pending",
            "progress": 0,
            "message": _MESSAGES["pending"],
            "steps": [_step(name, completed=False, active=False) for name in STEP_NAMES],
            "created_at": created,
            "updated_at": created,
        }

    def to_json(self, now: float) -> dict[str, Any]:
        """The Job object as ``GET /jobs/{id}`` shows it at ``now``."""
        status = self.status_at(now)
        offset = self._frozen_offset(now)
        index = self._step_index(offset)
        if status == "completed":
            steps = [_step(name, completed=True, active=False) for name in STEP_NAMES]
            progress, message = 100, _MESSAGES["completed"]
        else:
            steps = [
                _step(name, completed=i < index, active=status == "processing" and i == index)
                for i, name in enumerate(STEP_NAMES)
            ]
            progress = self._progress(offset)
            if status == "failed" and self.failure is not None:
                message = self.failure["message"]
            elif status == "processing":
                message = _MESSAGES[STEP_NAMES[index]]
            else:
                message = _MESSAGES[status]
        if self.ended_at is not None:
            updated = self.ended_at
        else:
            passed = [event.offset for event in self.script() if event.offset <= offset]
            updated = self.created_at + max(passed, default=0.0)
        payload: dict[str, Any] = {
            "id": self.id,
            "type": JOB_TYPE,
            "status": status,
            "progress": progress,
            "message": message,
            "steps": steps,
            "created_at": rfc3339(self.created_at),
            "updated_at": rfc3339(updated),
        }
        if status == "completed":
            payload["result"] = self.result
        elif status == "failed" and self.failure is not None:
            payload["error"] = dict(self.failure)
        return payload

    def script(self) -> list[ScriptEvent]:
        """Every non-terminal event of a full run, in order.

        Progress ticks every 10 %, and a ``step`` event marks each step that
        finishes or starts. The list has the same length for every job, which
        keeps event ids stable across reconnects.
        """
        start = self.knots[0]
        steps = len(STEP_NAMES)
        events = [
            ScriptEvent(0.0, "progress", {"progress": 0, "message": _MESSAGES["pending"]}),
            ScriptEvent(start, "step", _step(STEP_NAMES[0], completed=False, active=True)),
        ]
        boundary = 1
        for tick in range(1, _TICKS):
            # Fractions compared in integers: step boundary b/steps before tick t/_TICKS.
            while boundary < steps and boundary * _TICKS <= tick * steps:
                offset = self._offset_at(100 * boundary / steps)
                done, begun = STEP_NAMES[boundary - 1], STEP_NAMES[boundary]
                events.append(
                    ScriptEvent(offset, "step", _step(done, completed=True, active=False))
                )
                events.append(
                    ScriptEvent(offset, "step", _step(begun, completed=False, active=True))
                )
                boundary += 1
            message = _MESSAGES[STEP_NAMES[tick * steps // _TICKS]]
            progress = {"progress": tick * 100 // _TICKS, "message": message}
            events.append(ScriptEvent(self.knots[tick], "progress", progress))
        end = self.duration
        events.append(
            ScriptEvent(end, "step", _step(STEP_NAMES[-1], completed=True, active=False))
        )
        events.append(
            ScriptEvent(end, "progress", {"progress": 100, "message": _MESSAGES["completed"]})
        )
        return events

    def stream_events(self, now: float) -> tuple[list[StreamEvent], bool]:
        """Return the events a stream has to have sent by ``now``, and whether it may close.

        A completed job always shows its whole script then ``done``. A failed or
        cancelled one shows what had happened before it ended, then ``error``;
        ids stay consecutive.
        """
        status = self.status_at(now)
        script = self.script()
        offset = self._frozen_offset(now)
        terminal: tuple[str, dict[str, Any]] | None
        if status in ("pending", "processing"):
            shown, terminal = [e for e in script if e.offset <= offset], None
        elif status == "completed":
            shown, terminal = script, ("done", {"result": self.result})
        elif status == "failed":
            shown, terminal = (
                [e for e in script if e.offset < offset],
                ("error", dict(self.failure or {})),
            )
        else:
            shown, terminal = (
                [e for e in script if e.offset <= offset],
                ("error", dict(CANCELLED_ERROR)),
            )
        events = [StreamEvent(i, e.event, e.data) for i, e in enumerate(shown, start=1)]
        if terminal is not None:
            events.append(StreamEvent(len(events) + 1, *terminal))
        return events, terminal is not None

    def next_change_at(self, now: float) -> float:
        """When the next script event is due (the end of the run if none is left)."""
        elapsed = now - self.created_at
        upcoming = [e.offset for e in self.script() if e.offset > elapsed]
        return self.created_at + min(upcoming, default=self.duration)

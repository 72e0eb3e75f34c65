"""The API's payload shapes as frozen dataclasses, and the enumerations the API documents.

Parsing is strict about what a caller relies on (a required field missing or of
the wrong type raises :class:`~.errors.MalformedResponseError`) and lenient
about everything else: unknown fields and unknown enum values never crash, and
the whole object stays available as ``raw``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from .errors import MalformedResponseError

JOB_STATUSES = ("pending", "processing", "completed", "failed", "cancelled")
TERMINAL_STATUSES = frozenset({"completed", "failed", "cancelled"})
JOB_TYPES = (
    "blog_post.generate",
    "social_post.generate",
    "image.generate",
    "translation.batch",
    "content_plan.generate",
    "website.generate",
)
ASPECT_RATIOS = ("1:1", "16:9", "9:16", "4:5", "4:3", "3:2")

_MISSING = object()

#: The moments every time zone can show: a UTC offset is less than a day, so a
#: moment a day inside ``datetime``'s range never leaves it when converted.
_EARLIEST = datetime.min.replace(tzinfo=timezone.utc) + timedelta(days=1)
_LATEST = datetime.max.replace(tzinfo=timezone.utc) - timedelta(days=1)


def unwrap(payload: Any, what: str, marker: str) -> Mapping[str, Any]:
    """Return the object of ``payload``, bare or wrapped as ``{"data": {...}}``.

    The API docs show both envelopes for the same endpoints (§2 "Envelope"), so
    ``payload`` is unwrapped when its ``data`` is an object and the ``marker``
    field that every such object has (``id``, ``key``) is not at the top level.
    """
    if not isinstance(payload, Mapping):
        raise MalformedResponseError(f"Expected a JSON object for {what}, got {_kind(payload)}.")
    data = payload.get("data")
    if isinstance(data, Mapping) and marker not in payload:
        return data
    return payload


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _get(obj: Mapping[str, Any], name: str, kind: type, what: str) -> Any:
    value = obj.get(name, _MISSING)
    if value is _MISSING:
        raise MalformedResponseError(f"{what} has no {name!r} field.")
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise MalformedResponseError(
            f"{what} field {name!r} is {_kind(value)}, not {kind.__name__}."
        )
    return value


def _opt(obj: Mapping[str, Any], name: str, kind: type, what: str) -> Any:
    if obj.get(name) is None:
        return None
    return _get(obj, name, kind, what)


def parse_timestamp(value: str, name: str = "timestamp") -> datetime:
    """Parse an RFC 3339 timestamp (``2026-04-19T10:14:22Z``) into an aware datetime.

    ``Z`` is rewritten because ``fromisoformat`` only accepts it from Python 3.11.
    A timestamp without an offset is taken as UTC, which is what the API documents.
    One within a day of the calendar's ends (``9999-12-31T23:59:59-14:00``) is
    refused: valid RFC 3339, but it overflows when stored in UTC or shown in
    the site's time zone.
    """
    text = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise MalformedResponseError(f"{name} {value!r} is not an RFC 3339 timestamp.") from None
    if not parsed.tzinfo:
        parsed = parsed.replace(tzinfo=timezone.utc)
    if not _EARLIEST <= parsed <= _LATEST:
        raise MalformedResponseError(f"{name} {value!r} is a moment that cannot be stored.")
    return parsed


def _timestamp(obj: Mapping[str, Any], name: str, what: str, *, required: bool) -> Any:
    value = (_get if required else _opt)(obj, name, str, what)
    return None if value is None else parse_timestamp(value, f"{what} {name!r}")


@dataclass(frozen=True)
class JobStep:
    """One pipeline step of a job, e.g. ``compose``, ``render``, ``upscale``."""

    name: str
    completed: bool
    active: bool

    @classmethod
    def from_api(cls, obj: Any) -> JobStep:
        if not isinstance(obj, Mapping):
            raise MalformedResponseError(f"A job step is {_kind(obj)}, not an object.")
        return cls(
            name=_get(obj, "name", str, "Job step"),
            completed=_get(obj, "completed", bool, "Job step"),
            active=_get(obj, "active", bool, "Job step"),
        )


@dataclass(frozen=True)
class JobError:
    """Why a job failed (``upstream_unavailable``…) or was cancelled: not an HTTP error."""

    code: str
    message: str

    @classmethod
    def from_api(cls, obj: Any) -> JobError:
        if not isinstance(obj, Mapping):
            raise MalformedResponseError(f"A job error is {_kind(obj)}, not an object.")
        return cls(
            code=_get(obj, "code", str, "Job error"),
            message=_opt(obj, "message", str, "Job error") or "",
        )


@dataclass(frozen=True)
class Job:
    """An asynchronous job. ``status`` may hold a value newer than :data:`JOB_STATUSES`."""

    id: str
    type: str
    status: str
    created_at: datetime
    updated_at: datetime | None = None
    progress: int | None = None
    message: str | None = None
    steps: tuple[JobStep, ...] = ()
    #: Present when completed; for ``image.generate`` it is ``{url, key, width, height}``.
    result: Mapping[str, Any] | None = field(default=None, hash=False)
    error: JobError | None = None
    #: The JSON object as received, unknown fields included; treat it as read-only.
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def is_terminal(self) -> bool:
        """True once the job can no longer change: completed, failed or cancelled."""
        return self.status in TERMINAL_STATUSES

    @classmethod
    def from_api(cls, payload: Any) -> Job:
        """Build a Job from a bare or ``{"data": ...}``-wrapped object.

        Raises MalformedResponseError when ``id``, ``type``, ``status`` or
        ``created_at`` is missing, or any known field has the wrong type.
        """
        obj = unwrap(payload, "a job", "id")
        steps = _opt(obj, "steps", list, "Job") or ()
        error = obj.get("error")
        return cls(
            id=_get(obj, "id", str, "Job"),
            type=_get(obj, "type", str, "Job"),
            status=_get(obj, "status", str, "Job"),
            created_at=_timestamp(obj, "created_at", "Job", required=True),
            updated_at=_timestamp(obj, "updated_at", "Job", required=False),
            progress=_opt(obj, "progress", int, "Job"),
            message=_opt(obj, "message", str, "Job"),
            steps=tuple(JobStep.from_api(step) for step in steps),
            result=_opt(obj, "result", Mapping, "Job"),
            error=None if error is None else JobError.from_api(error),
            raw=obj,
        )


@dataclass(frozen=True)
class Image:
    """An image addressable by key.

    Only ``key`` and ``url`` are required by the API docs; the rest is ``None``
    when the API leaves it out (``updated_at`` is absent from one documented variant).
    """

    key: str
    url: str
    width: int | None = None
    height: int | None = None
    bytes: int | None = None
    mime_type: str | None = None
    generated: bool | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    #: The JSON object as received, unknown fields included; treat it as read-only.
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_api(cls, payload: Any) -> Image:
        """Build an Image from a bare or ``{"data": ...}``-wrapped object.

        Raises MalformedResponseError when ``key`` or ``url`` is missing, or any
        known field has the wrong type.
        """
        obj = unwrap(payload, "an image", "key")
        return cls(
            key=_get(obj, "key", str, "Image"),
            url=_get(obj, "url", str, "Image"),
            width=_opt(obj, "width", int, "Image"),
            height=_opt(obj, "height", int, "Image"),
            bytes=_opt(obj, "bytes", int, "Image"),
            mime_type=_opt(obj, "mime_type", str, "Image"),
            generated=_opt(obj, "generated", bool, "Image"),
            created_at=_timestamp(obj, "created_at", "Image", required=False),
            updated_at=_timestamp(obj, "updated_at", "Image", required=False),
            raw=obj,
        )


@dataclass(frozen=True)
class JobEvent:
    """One server-sent event of a job stream.

    ``event`` is ``progress``, ``step``, ``done`` or ``error`` (others are passed
    through); ``id`` is the stream's last event id, to resume with ``Last-Event-ID``.
    """

    event: str
    data: Mapping[str, Any] = field(hash=False)
    id: str | None = None

    @property
    def is_terminal(self) -> bool:
        """True for ``done`` and ``error``: the server closes the stream after them."""
        return self.event in ("done", "error")


@dataclass(frozen=True)
class DownloadInfo:
    """What :meth:`NeuralDraftClient.download` wrote: final URL, size and digest."""

    url: str
    bytes: int
    content_type: str | None
    #: Hex SHA-256 of the bytes written.
    sha256: str

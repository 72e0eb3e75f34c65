"""Payload parsing: both envelopes, unknown fields kept, wrong shapes refused, typed."""

from __future__ import annotations

import pickle
from datetime import datetime, timedelta, timezone

import pytest

from django_neuraldraft.client import (
    ASPECT_RATIOS,
    JOB_STATUSES,
    JOB_TYPES,
    TERMINAL_STATUSES,
    Image,
    Job,
    JobError,
    JobEvent,
    JobStep,
    MalformedResponseError,
)
from django_neuraldraft.client.types import parse_timestamp

JOB = {
    "id": "job_2Ngd9KqLmRpW",
    "type": "image.generate",
    "status": "processing",
    "progress": 64,
    "message": "Rendering",
    "steps": [
        {"name": "compose", "completed": True, "active": False},
        {"name": "render", "completed": False, "active": True},
    ],
    "created_at": "2026-04-19T10:14:02Z",
    "updated_at": "2026-04-19T10:18:42Z",
}

IMAGE = {
    "key": "hero.background",
    "url": "https://cdn.neuraldraft.io/prj_2NfQmBcKpXY8/hero-background-89hf.jpg",
    "width": 2048,
    "height": 1152,
    "bytes": 482911,
    "mime_type": "image/jpeg",
    "generated": True,
    "created_at": "2026-04-19T10:21:02Z",
}


class TestJob:
    def test_bare_object(self):
        job = Job.from_api(JOB)
        assert job.id == "job_2Ngd9KqLmRpW"
        assert job.status == "processing"
        assert job.progress == 64
        assert job.steps == (
            JobStep("compose", completed=True, active=False),
            JobStep("render", completed=False, active=True),
        )
        assert job.created_at == datetime(2026, 4, 19, 10, 14, 2, tzinfo=timezone.utc)
        assert job.updated_at == datetime(2026, 4, 19, 10, 18, 42, tzinfo=timezone.utc)
        assert job.result is None and job.error is None
        assert not job.is_terminal

    def test_wrapped_object_parses_the_same(self):
        assert Job.from_api({"data": JOB}) == Job.from_api(JOB)

    def test_unknown_fields_and_values_kept_in_raw(self):
        payload = {**JOB, "status": "archived", "queue_position": 3, "type": "video.generate"}
        job = Job.from_api({"data": payload})
        assert job.status == "archived"
        assert not job.is_terminal
        assert job.raw["queue_position"] == 3
        assert job.raw is payload

    def test_completed_job(self):
        result = {"url": "https://cdn.example/x.png", "key": "k", "width": 1, "height": 1}
        job = Job.from_api({**JOB, "status": "completed", "progress": 100, "result": result})
        assert job.is_terminal
        assert job.result == result

    def test_failed_job(self):
        error = {"code": "upstream_unavailable", "message": "Try later."}
        job = Job.from_api({**JOB, "status": "failed", "error": error})
        assert job.is_terminal
        assert job.error == JobError("upstream_unavailable", "Try later.")

    def test_minimal_job(self):
        job = Job.from_api({k: JOB[k] for k in ("id", "type", "status", "created_at")})
        assert (job.updated_at, job.progress, job.message, job.steps) == (None, None, None, ())

    @pytest.mark.parametrize("name", ["id", "type", "status", "created_at"])
    def test_missing_required_field(self, name):
        payload = {k: v for k, v in JOB.items() if k != name}
        with pytest.raises(MalformedResponseError, match=name):
            Job.from_api(payload)

    @pytest.mark.parametrize(
        ("name", "value"),
        [
            ("id", 7),
            ("status", None),
            ("progress", "64"),
            ("progress", True),
            ("steps", {"name": "x"}),
            ("steps", ["compose"]),
            ("steps", [{"name": "x", "completed": "yes", "active": False}]),
            ("result", ["x"]),
            ("error", "boom"),
            ("error", {"message": "no code"}),
            ("created_at", "yesterday"),
            ("updated_at", 1713521642),
        ],
    )
    def test_wrong_type(self, name, value):
        with pytest.raises(MalformedResponseError):
            Job.from_api({**JOB, name: value})

    @pytest.mark.parametrize("payload", [None, [], "job", {"data": None}, {"data": [JOB]}])
    def test_not_an_object(self, payload):
        with pytest.raises(MalformedResponseError):
            Job.from_api(payload)

    def test_hashable_and_picklable(self):
        job = Job.from_api({**JOB, "result": {"url": "u"}})
        copy = pickle.loads(pickle.dumps(job))
        assert copy == job
        assert hash(copy) == hash(job)


class TestImage:
    def test_bare_variant(self):
        image = Image.from_api(IMAGE)
        assert (image.key, image.width, image.height, image.bytes) == (
            "hero.background",
            2048,
            1152,
            482911,
        )
        assert image.generated is True
        assert image.updated_at is None

    def test_wrapped_variant_with_updated_at(self):
        image = Image.from_api({"data": {**IMAGE, "updated_at": "2026-04-20T08:00:00Z"}})
        assert image.updated_at == datetime(2026, 4, 20, 8, tzinfo=timezone.utc)
        assert image.mime_type == "image/jpeg"

    def test_only_key_and_url_are_required(self):
        image = Image.from_api({"key": "k", "url": "u", "alt": "kept"})
        assert (image.width, image.generated, image.created_at) == (None, None, None)
        assert image.raw["alt"] == "kept"

    @pytest.mark.parametrize("name", ["key", "url"])
    def test_missing_required_field(self, name):
        with pytest.raises(MalformedResponseError, match=name):
            Image.from_api({k: v for k, v in IMAGE.items() if k != name})

    @pytest.mark.parametrize(
        ("name", "value"), [("width", 1.5), ("generated", "true"), ("bytes", False)]
    )
    def test_wrong_type(self, name, value):
        with pytest.raises(MalformedResponseError):
            Image.from_api({**IMAGE, name: value})

    def test_object_with_a_data_field_is_not_unwrapped(self):
        image = Image.from_api({**IMAGE, "data": {"key": "other", "url": "u"}})
        assert image.key == "hero.background"


class TestTimestamps:
    @pytest.mark.parametrize(
        ("text", "offset"),
        [
            ("2026-04-19T10:14:22Z", 0),
            ("2026-04-19T10:14:22z", 0),
            ("2026-04-19T12:14:22+02:00", 2),
            ("2026-04-19T10:14:22", 0),
        ],
    )
    def test_aware_result(self, text, offset):
        parsed = parse_timestamp(text)
        assert parsed.utcoffset() == timedelta(hours=offset)
        assert parsed.astimezone(timezone.utc) == datetime(
            2026, 4, 19, 10, 14, 22, tzinfo=timezone.utc
        )

    def test_garbage(self):
        with pytest.raises(MalformedResponseError, match="RFC 3339"):
            parse_timestamp("19/04/2026")

    @pytest.mark.parametrize(
        "text",
        [
            "9999-12-31T23:59:59-14:00",
            "0001-01-01T00:00:00+14:00",
            "9999-12-31T12:00:00Z",
            "0001-01-01T12:00:00",
        ],
    )
    def test_a_moment_at_the_end_of_the_calendar_is_refused(self, text):
        with pytest.raises(MalformedResponseError, match="cannot be stored"):
            parse_timestamp(text)

    @pytest.mark.parametrize("text", ["9999-12-30T00:00:00-14:00", "0001-01-03T00:00:00+14:00"])
    def test_a_moment_a_day_inside_the_calendar_is_kept(self, text):
        assert parse_timestamp(text) == datetime.fromisoformat(text)


def test_constants():
    assert JOB_STATUSES == ("pending", "processing", "completed", "failed", "cancelled")
    assert frozenset({"completed", "failed", "cancelled"}) == TERMINAL_STATUSES
    assert ASPECT_RATIOS == ("1:1", "16:9", "9:16", "4:5", "4:3", "3:2")
    assert len(JOB_TYPES) == 6
    assert "image.generate" in JOB_TYPES


def test_job_event_terminal():
    assert JobEvent("done", {"result": {}}, "5").is_terminal
    assert JobEvent("error", {"code": "x", "message": ""}).is_terminal
    assert not JobEvent("progress", {"progress": 5}).is_terminal

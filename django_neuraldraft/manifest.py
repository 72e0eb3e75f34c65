"""Images as code: a TOML file of image keys, the plan that brings the database in line with it.

::

    [images."home.hero"]
    prompt = "A quiet harbour at dawn"
    style = "photorealistic"
    aspect_ratio = "16:9"
    alt_text = "Boats in a harbour"

A key's fields that the file lists are set on the key; fields it leaves out
keep what the key has. A key is generated when it has a prompt and either no
image on show or an image made from another prompt, style or aspect ratio
than the ones it would be asked for now (the provenance stored on the
``ImageVersion``). Applying the plan twice changes nothing the second time.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from . import conf
from .exceptions import CreditBudgetExceededError
from .models import ImageKey, Job
from .services import credits_left_today, generation_params, request_generation

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

#: The largest manifest read, in bytes: a list of image keys takes a few kilobytes.
MAX_BYTES = 1024 * 1024

#: The fields a key's table may set, in the order the plan shows them.
FIELDS = ("prompt", "style", "aspect_ratio", "alt_text")

#: Actions of a plan step; ``unchanged`` is a step with none of the others.
CREATE, UPDATE, GENERATE, UNCHANGED = "create", "update", "generate", "unchanged"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the file; ``line`` is 1-based, ``None`` when it cannot be told."""

    message: str
    line: int | None = None

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}" if self.line else self.message


class ManifestError(ValueError):
    """The file cannot be applied; ``problems`` lists every reason, with line numbers."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(map(str, problems)))
        self.problems = problems


@dataclass(frozen=True)
class Entry:
    """One ``[images."<key>"]`` table: the fields it sets, already validated."""

    key: str
    fields: dict[str, str]
    line: int | None = None


@dataclass(frozen=True)
class Step:
    """What applying does to one key. ``changes`` maps a field to ``(now, then)``;
    ``note`` explains a generation that is not planned although one may be expected.
    """

    key: str
    actions: tuple[str, ...]
    changes: dict[str, tuple[str, str]] = field(default_factory=dict)
    note: str = ""


@dataclass(frozen=True)
class Plan:
    steps: tuple[Step, ...]
    credits_per_image: int

    @property
    def generations(self) -> int:
        return sum(GENERATE in step.actions for step in self.steps)

    @property
    def credits(self) -> int:
        return self.generations * self.credits_per_image

    @property
    def changes_anything(self) -> bool:
        return any(step.actions != (UNCHANGED,) for step in self.steps)

    def count(self, action: str) -> int:
        return sum(action in step.actions for step in self.steps)


def read(path: Path) -> str:
    """The text of the manifest at ``path``, for :func:`load`.

    ``ManifestError`` when it cannot be read, is over :data:`MAX_BYTES` (it is
    refused unread), or is not UTF-8 (the line of the first bad byte is given).
    A byte-order mark, which some editors write, is allowed.
    """
    try:
        with path.open("rb") as file:
            data = file.read(MAX_BYTES + 1)
    except OSError as err:
        raise ManifestError(
            [Problem(_("Cannot read the file: %(error)s.") % {"error": err.strerror or err})]
        ) from None
    if len(data) > MAX_BYTES:
        raise ManifestError(
            [
                Problem(
                    _(
                        "The file is over %(limit)d bytes, too large for a list of image "
                        "keys; split it and apply each part."
                    )
                    % {"limit": MAX_BYTES}
                )
            ]
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise ManifestError(
            [
                Problem(
                    _("Byte 0x%(byte)02x is not UTF-8; save the file as UTF-8.")
                    % {"byte": data[err.start]},
                    data.count(b"\n", 0, err.start) + 1,
                )
            ]
        ) from None


def load(text: str) -> list[Entry]:
    """Parse and validate a manifest; ``ManifestError`` lists every problem with its line."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ManifestError([_decode_problem(err)]) from None
    lines = _LineIndex(text)
    problems: list[Problem] = []
    for name in data:
        if name != "images":
            problems.append(
                Problem(
                    _('Unknown table %(name)r; the file holds [images."<key>"] tables only.')
                    % {"name": name},
                    lines.top_level(name),
                )
            )
    images = data.get("images")
    if not isinstance(images, dict) or not images:
        problems.append(Problem(_('No image keys: add a table such as [images."home.hero"].')))
        raise ManifestError(problems)
    entries = []
    for key, table in images.items():
        entry = _entry(key, table, lines, problems)
        if entry is not None:
            entries.append(entry)
    if problems:
        raise ManifestError(problems)
    return entries


def _decode_problem(err: tomllib.TOMLDecodeError) -> Problem:
    message = str(err)
    match = re.search(r"\(at line (\d+), column \d+\)$", message)
    if match is None:
        return Problem(message)
    return Problem(message[: match.start()].strip(), int(match.group(1)))


def _entry(key: str, table: Any, lines: _LineIndex, problems: list[Problem]) -> Entry | None:
    line = lines.table(key)
    if not isinstance(table, dict):
        problems.append(
            Problem(_("images.%(key)s must be a table of fields.") % {"key": key}, line)
        )
        return None
    fields: dict[str, str] = {}
    found = len(problems)
    for name, value in table.items():
        where = lines.field(key, name) or line
        if isinstance(value, dict):
            problems.append(
                Problem(
                    _(
                        "images.%(key)s.%(name)s is a table: quote keys that contain dots, "
                        'as in [images."%(key)s.%(name)s"].'
                    )
                    % {"key": key, "name": name},
                    where,
                )
            )
        elif name not in FIELDS:
            problems.append(
                Problem(
                    _("Unknown field %(name)r of %(key)s; the fields are %(fields)s.")
                    % {"name": name, "key": key, "fields": ", ".join(FIELDS)},
                    where,
                )
            )
        elif not isinstance(value, str):
            problems.append(
                Problem(
                    _("%(key)s: %(name)s must be a string.") % {"key": key, "name": name}, where
                )
            )
        else:
            fields[name] = value.strip()
    try:
        ImageKey(key=key, **fields).clean_fields(exclude=["current"])
    except ValidationError as err:
        for name, messages in err.message_dict.items():
            where = lines.field(key, name) if name != "key" else line
            problems.extend(
                Problem(f"{key}: {name}: {message}", where or line) for message in messages
            )
    if len(problems) > found:
        return None
    return Entry(key, fields, line)


class _LineIndex:
    """Where tables and fields start in the file, found by reading its lines.

    ``tomllib`` gives no positions for valid TOML, so the lines of problems that
    are ours (an unknown field, a bad aspect ratio) are found here. A key
    written another way (inline tables, dotted keys) gets the nearest line known,
    or none.
    """

    _KEY = r"(\"(?:[^\"\\]|\\.)*\"|'[^']*'|[A-Za-z0-9_-]+)"
    # A bare key is taken whole (the lookahead), or its split points and the
    # rest of the header backtrack against each other: quadratic on a long
    # ``[images.aaaa…`` line without ``]``, which a multi-line prompt may hold.
    _HEADER = re.compile(rf"^\s*\[\s*images\s*\.\s*{_KEY}(?![A-Za-z0-9_-])[^\]]*\]")
    _ANY_HEADER = re.compile(r"^\s*\[")
    _ASSIGNMENT = re.compile(rf"^\s*{_KEY}\s*=")
    _TOP_HEADER = re.compile(rf"^\s*\[+\s*{_KEY}")

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()
        self.tables: dict[str, tuple[int, int]] = {}
        self.top: dict[str, int] = {}
        starts = [i for i, line in enumerate(self.lines) if self._ANY_HEADER.match(line)]
        for position, start in enumerate(starts):
            match = self._HEADER.match(self.lines[start])
            if match is None:
                continue
            end = starts[position + 1] if position + 1 < len(starts) else len(self.lines)
            self.tables.setdefault(_bare(match.group(1)), (start, end))
        for index, line in enumerate(self.lines):
            match = self._TOP_HEADER.match(line)
            if match is None and (not starts or index < starts[0]):
                match = self._ASSIGNMENT.match(line)
            if match is not None:
                self.top.setdefault(_bare(match.group(1)), index + 1)

    def table(self, key: str) -> int | None:
        span = self.tables.get(key)
        return span[0] + 1 if span else None

    def field(self, key: str, name: str) -> int | None:
        span = self.tables.get(key)
        if span is None:
            return None
        for index in range(span[0] + 1, span[1]):
            match = self._ASSIGNMENT.match(self.lines[index])
            if match and _bare(match.group(1)) == name:
                return index + 1
        return None

    def top_level(self, name: str) -> int | None:
        return self.top.get(name)


def _bare(key: str) -> str:
    """A TOML key as written (bare or quoted) as the string it names."""
    if key[:1] in ("'", '"'):
        try:
            return tomllib.loads(f"k = {key}")["k"]
        except tomllib.TOMLDecodeError:
            return key
    return key


def plan(entries: list[Entry]) -> Plan:
    """What applying ``entries`` would do, per key; reads the database, changes nothing."""
    existing = {
        image_key.key: image_key
        for image_key in ImageKey.objects.select_related("current").filter(
            key__in=[entry.key for entry in entries]
        )
    }
    steps = tuple(_step(entry, existing.get(entry.key)) for entry in entries)
    return Plan(steps, conf.credits_per_image())


def _step(entry: Entry, image_key: ImageKey | None) -> Step:
    actions: list[str] = []
    if image_key is None:
        actions.append(CREATE)
        changes = {name: ("", value) for name, value in entry.fields.items() if value}
        target = ImageKey(key=entry.key, **entry.fields)
    else:
        changes = {
            name: (getattr(image_key, name), value)
            for name, value in entry.fields.items()
            if getattr(image_key, name) != value
        }
        if changes:
            actions.append(UPDATE)
        target = ImageKey(
            key=entry.key,
            **{name: entry.fields.get(name, getattr(image_key, name)) for name in FIELDS},
        )
    generate, note = _needs_generation(target, image_key)
    if generate:
        actions.append(GENERATE)
    return Step(entry.key, tuple(actions) or (UNCHANGED,), changes, note)


def _needs_generation(target: ImageKey, image_key: ImageKey | None) -> tuple[bool, str]:
    """Whether ``target`` (the key as the file wants it) needs a new image, and why not."""
    if not target.prompt:
        return False, _("no prompt: nothing to generate")
    # The one rule for what a generation sends (key fields, then the site defaults),
    # so the plan compares with exactly what request_generation would ask for.
    params = generation_params(target, None, None, None)
    if image_key is None:
        return True, ""
    running = image_key.jobs.in_flight().first()
    if running is not None:
        if _provenance(running.params) == _provenance(params):
            return False, _("being generated")
        return False, _("a generation from other settings is running; apply again after it")
    current = image_key.current
    if current is None:
        return True, ""
    if not current.prompt:
        return False, _("the image on show has no recorded prompt (pulled); it is kept")
    made_from = {
        "prompt": current.prompt,
        "style": current.style,
        "aspect_ratio": current.aspect_ratio,
    }
    return _provenance(made_from) != _provenance(params), ""


def _provenance(params: dict[str, str]) -> tuple[str, str, str]:
    return (params.get("prompt", ""), params.get("style", ""), params.get("aspect_ratio", ""))


def apply(entries: list[Entry], expected: Plan) -> list[Job]:
    """Carry out ``expected`` in one transaction; returns the jobs asked for.

    The plan is made again first: if the database moved since ``expected``
    was shown, ``ManifestError`` is raised and nothing changes. Raises
    ``CreditBudgetExceededError`` before any change when the generations would
    pass ``DAILY_CREDIT_BUDGET``.
    """
    with transaction.atomic():
        current = plan(entries)
        if current != expected:
            raise ManifestError(
                [Problem(_("The image keys changed while the plan was shown; run it again."))]
            )
        left = credits_left_today()
        if left is not None and current.credits > left:
            raise CreditBudgetExceededError(
                _(
                    "The plan costs %(cost)d credits and %(left)d are left of today's budget; "
                    "raise NEURALDRAFT['DAILY_CREDIT_BUDGET'] or apply fewer keys."
                )
                % {"cost": current.credits, "left": left}
            )
        jobs = []
        for step in current.steps:
            if step.actions == (UNCHANGED,):
                continue
            image_key, _created = ImageKey.objects.get_or_create(key=step.key)
            if step.changes:
                for name, (_before, after) in step.changes.items():
                    setattr(image_key, name, after)
                image_key.full_clean()
                image_key.save()
            if GENERATE in step.actions:
                jobs.append(request_generation(image_key))
    return jobs

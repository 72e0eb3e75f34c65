"""Fault injection: what can go wrong, which requests it hits, and how often.

A fault matches requests by method and path prefix and is used up one match
at a time (``count``), or stays until cleared (``count=None``). The kinds fall
in three groups by where they act: on any request, on CDN downloads, and on
jobs created while they are active.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

#: Kinds that act on any request (API or CDN) before it is handled, or on its answer.
REQUEST_KINDS = frozenset(
    {
        "latency",
        "status",
        "rate_limit",
        "drop_response",
        "echo_authorization",
        "huge_body",
        "answer_fields",
        "answer_body",
        "gzip_bomb",
    }
)
#: Kinds that change what the CDN serves.
CDN_KINDS = frozenset(
    {
        "corrupt_image",
        "oversized_image",
        "wrong_content_type",
        "redirect",
        "hostile_image",
        "slow_body",
    }
)
#: What a ``hostile_image`` fault serves, by ``variant``.
HOSTILE_IMAGES = frozenset(
    {"text_bomb", "icc_bomb", "animated_gif", "animated_png", "animated_webp", "tiff"}
)
#: Where an ``echo_authorization`` fault repeats the key, by ``into``.
ECHO_PLACES = frozenset({"detail", "headers", "job"})
#: What a ``huge_body`` fault's JSON is made of, by ``shape``.
HUGE_SHAPES = frozenset({"padding", "nested"})
#: Kinds baked into a job when it is created.
JOB_KINDS = frozenset({"job_failure", "result_url"})

#: Parameter name -> (type, default) per kind; ``...`` marks a required parameter.
_PARAMETERS: dict[str, dict[str, tuple[type, Any]]] = {
    "latency": {"seconds": (float, ...)},
    "status": {
        "status": (int, ...),
        "code": (str, None),
        "detail": (str, None),
        "request_id": (str, None),
    },
    "rate_limit": {"retry_after": (int, 1)},
    "drop_response": {},
    "answer_fields": {"fields": (dict, ...)},
    "answer_body": {"body": (str, ...)},
    "job_failure": {
        "code": (str, "upstream_unavailable"),
        "message": (str, "The image model is temporarily unavailable."),
    },
    "corrupt_image": {},
    "oversized_image": {"width": (int, None), "height": (int, None), "bytes": (int, None)},
    "wrong_content_type": {},
    "result_url": {"url": (str, ...)},
    "echo_authorization": {"status": (int, 401), "into": (str, "detail")},
    "huge_body": {"bytes": (int, ...), "shape": (str, "padding")},
    "redirect": {"location": (str, ...), "status": (int, 302)},
    "hostile_image": {"variant": (str, ...)},
    "slow_body": {"interval": (float, 0.2), "bytes": (int, 1)},
    "gzip_bomb": {"bytes": (int, ...), "content_type": (str, "image/png")},
}

KINDS = tuple(_PARAMETERS)

#: Parameters that take one of a few values, per kind.
_CHOICES: dict[str, dict[str, frozenset[str]]] = {
    "echo_authorization": {"into": ECHO_PLACES},
    "huge_body": {"shape": HUGE_SHAPES},
    "hostile_image": {"variant": HOSTILE_IMAGES},
}


class FaultError(ValueError):
    """A fault that cannot be set; ``field`` names the offending argument."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


_ids = itertools.count(1)


@dataclass
class Fault:
    """One active fault. ``remaining`` counts down; ``None`` means until cleared."""

    kind: str
    params: dict[str, Any]
    remaining: int | None = None
    method: str | None = None
    path: str | None = None
    id: int = field(default_factory=lambda: next(_ids))
    #: Bytes a ``huge_body`` fault has written so far: how much the client took.
    served: int = 0

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and (
            self.path is None or path.startswith(self.path)
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "count": self.remaining,
            "method": self.method,
            "path": self.path,
            **self.params,
        }


def _coerce(kind: str, name: str, value: Any, expected: type) -> Any:
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, expected) or isinstance(value, bool):
        raise FaultError(name, f"{kind} fault: {name} must be {expected.__name__}, not {value!r}.")
    return value


def make_fault(
    kind: str,
    *,
    count: int | None = None,
    method: str | None = None,
    path: str | None = None,
    params: Mapping[str, Any] | None = None,
) -> Fault:
    """Build a validated fault; raise :class:`FaultError` naming the bad argument."""
    if kind not in _PARAMETERS:
        raise FaultError("kind", f"Unknown fault kind {kind!r}; known kinds: {', '.join(KINDS)}.")
    if count is not None and (not isinstance(count, int) or isinstance(count, bool) or count < 1):
        raise FaultError("count", "count must be a positive integer or None (until cleared).")
    if path is not None and not (isinstance(path, str) and path.startswith("/")):
        raise FaultError("path", "path must be a path prefix starting with '/'.")
    if method is not None and not isinstance(method, str):
        raise FaultError("method", "method must be an HTTP method name.")
    spec = _PARAMETERS[kind]
    given = dict(params or {})
    unknown = sorted(set(given) - set(spec))
    if unknown:
        raise FaultError(unknown[0], f"{kind} fault takes no parameter {unknown[0]!r}.")
    values = {}
    for name, (expected, default) in spec.items():
        if given.get(name) is None:
            if default is ...:
                raise FaultError(name, f"{kind} fault needs {name}=.")
            values[name] = default
        else:
            values[name] = _coerce(kind, name, given[name], expected)
    _check_values(kind, values)
    return Fault(kind, values, count, method.upper() if method else None, path)


def _check_values(kind: str, values: dict[str, Any]) -> None:
    """Refuse parameter values that are well typed but make no sense for ``kind``."""
    if kind == "oversized_image":
        _check_oversized(values)
    if kind == "slow_body" and (values["interval"] <= 0 or values["bytes"] < 1):
        raise FaultError("interval", "slow_body fault: interval and bytes must be positive.")
    if kind == "latency" and values["seconds"] < 0:
        raise FaultError("seconds", "latency fault: seconds must not be negative.")
    if kind in ("status", "echo_authorization") and not 400 <= values["status"] <= 599:
        raise FaultError("status", f"{kind} fault: status must be an error status (400-599).")
    if kind == "redirect":
        if values["status"] not in (301, 302, 303, 307, 308):
            raise FaultError("status", "redirect fault: status must be 301, 302, 303, 307 or 308.")
        if "\r" in values["location"] or "\n" in values["location"]:
            raise FaultError("location", "redirect fault: location cannot hold a line break.")
    if kind in ("huge_body", "gzip_bomb") and values["bytes"] < 1:
        raise FaultError("bytes", f"{kind} fault: bytes must be positive.")
    if kind == "status" and any(char in (values["request_id"] or "") for char in "\r\n"):
        raise FaultError("request_id", "status fault: request_id cannot hold a line break.")
    for name, choices in _CHOICES.get(kind, {}).items():
        if values[name] not in choices:
            known = ", ".join(sorted(choices))
            raise FaultError(name, f"{kind} fault: {name} is one of {known}.")


def _check_oversized(values: dict[str, Any]) -> None:
    has_size = values["width"] is not None and values["height"] is not None
    if has_size == (values["bytes"] is not None):
        raise FaultError("width", "oversized_image fault needs width= and height=, or bytes=.")
    if any(value is not None and value < 1 for value in values.values()):
        raise FaultError("width", "oversized_image fault sizes must be positive.")


@dataclass
class FaultSet:
    """The active faults, in the order they were set. Not locked: the store holds its lock."""

    faults: list[Fault] = field(default_factory=list)

    def add(self, fault: Fault) -> None:
        self.faults.append(fault)

    def clear(self) -> None:
        self.faults.clear()

    def take(self, kinds: Iterable[str], method: str, path: str) -> list[Fault]:
        """Return the faults of ``kinds`` matching this request, using up one count of each."""
        wanted = frozenset(kinds)
        taken = []
        for fault in self.faults:
            if fault.kind in wanted and fault.matches(method, path):
                taken.append(fault)
                if fault.remaining is not None:
                    fault.remaining -= 1
        self.faults = [f for f in self.faults if f.remaining is None or f.remaining > 0]
        return taken


def _parse_value(raw: str) -> Any:
    for convert in (int, float):
        try:
            return convert(raw)
        except ValueError:
            pass
    return {"none": None, "null": None, "true": True, "false": False}.get(raw.lower(), raw)


def parse_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """Split the command line form ``KIND[:param=value,...]`` into ``set_fault`` arguments.

    ``status:status=503,count=2`` gives ``("status", {"status": 503, "count": 2})``;
    values that read as numbers or true/false/none become those.
    """
    kind, _, rest = spec.partition(":")
    options: dict[str, Any] = {}
    for item in filter(None, rest.split(",")):
        name, separator, raw = item.partition("=")
        if not separator:
            raise FaultError(name, f"Fault parameter {item!r} is not name=value.")
        options[name.strip()] = _parse_value(raw.strip())
    return kind.strip(), options

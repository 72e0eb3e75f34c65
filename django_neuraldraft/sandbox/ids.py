"""Prefixed random identifiers in the API's style: ``job_…``, ``req_…``, ``whsec_…``."""

from __future__ import annotations

import secrets
import string

BASE62 = string.digits + string.ascii_letters


def random_base62(length: int) -> str:
    """Return ``length`` random base62 characters from the OS's secure source."""
    return "".join(secrets.choice(BASE62) for _ in range(length))


def new_id(prefix: str, length: int = 12) -> str:
    """Return ``<prefix>_<length base62>``, e.g. ``job_2Ngd9KqLmRpW`` (the docs show 12)."""
    return f"{prefix}_{random_base62(length)}"

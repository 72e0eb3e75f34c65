"""Test helpers for code that talks to Neural Draft: a sandbox API server in a ``with`` block.

Importing this module does not import Django, so it works in plain pytest
fixtures and in Django test settings alike.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django_neuraldraft.sandbox import SANDBOX_API_KEY, SandboxServer

__all__ = ["SANDBOX_API_KEY", "run_sandbox"]


@contextmanager
def run_sandbox(**options: Any) -> Iterator[SandboxServer]:
    """Start a :class:`SandboxServer` on a free loopback port, yield it, stop it on exit.

    ``options`` are :class:`SandboxServer`'s keyword arguments, e.g.
    ``run_sandbox(job_seconds=0.2)``. Point the client at ``server.base_url``
    with :data:`SANDBOX_API_KEY`.
    """
    options.setdefault("port", 0)
    with SandboxServer(**options) as server:
        yield server

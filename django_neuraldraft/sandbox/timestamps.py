"""RFC 3339 timestamps as the API writes them: UTC, ``Z`` suffix, whole seconds."""

from __future__ import annotations

import time


def rfc3339(timestamp: float) -> str:
    """Format a Unix timestamp as ``2026-04-19T10:14:22Z``."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))

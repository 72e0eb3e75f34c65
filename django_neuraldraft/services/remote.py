"""The process's Neural Draft client, built from the settings, and which of its errors pass.

Also how text from the network is kept, by every service that stores or logs
it: :func:`clean_text`.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from .. import conf
from ..client import NeuralDraftClient
from ..client.errors import printable, redact
from ..exceptions import (
    NeuralDraftConfigurationError,
    RateLimitedError,
    ServerError,
    TransportError,
)

#: Errors worth trying again later: the client already retried them a few times.
TRANSIENT_ERRORS = (ServerError, RateLimitedError, TransportError)

#: A 429 is never slept through: it comes back as RateLimitedError at once, and
#: a task reschedules itself after the Retry-After instead of holding a worker.
_RETRY_AFTER_LIMIT = 0.0


def get_client() -> NeuralDraftClient:
    """Return the process's client for the current settings, reusing its connections."""
    return _client_for(conf.api_key(), conf.base_url(), conf.request_timeout(), conf.max_retries())


@lru_cache(maxsize=4)
def _client_for(
    api_key: str, base_url: str, timeout: tuple[float, float], max_retries: int
) -> NeuralDraftClient:
    return NeuralDraftClient(
        api_key=api_key,
        base_url=base_url,
        timeout=timeout,
        max_retries=max_retries,
        max_retry_after=_RETRY_AFTER_LIMIT,
    )


def clean_text(text: Any, limit: int) -> str:
    """``text`` from the network as a column stores it and a log line shows it.

    API keys are masked, then :func:`~django_neuraldraft.client.errors.printable`,
    the one owner of that rule, writes it on one line with its control
    characters (ANSI escapes, line breaks, bidi overrides, NUL, which
    PostgreSQL refuses) as visible escapes, and cuts it to ``limit``, the
    column's size: a job's message, step or error forges no log line and hides
    no text in the admin, and an administrator sees what was sent.
    """
    try:
        api_key = conf.api_key()
    except NeuralDraftConfigurationError:
        api_key = ""
    return printable(redact(str(text or ""), api_key), limit)

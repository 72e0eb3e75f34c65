"""The process's Neural Draft client, built from the settings, and which of its errors pass."""

from __future__ import annotations

from functools import lru_cache

from .. import conf
from ..client import NeuralDraftClient
from ..exceptions import RateLimitedError, ServerError, TransportError

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

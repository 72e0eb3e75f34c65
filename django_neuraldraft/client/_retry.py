"""When the client retries a failed call, and how long it waits first."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timezone
from email.utils import parsedate_to_datetime
from time import time

from .errors import NeuralDraftError, RateLimitedError, ServerError, TransportError

#: The longest ``Retry-After`` read, in seconds (a day). A longer one is read as
#: this much, so that every caller can add it to the current time without
#: overflowing a datetime.
RETRY_AFTER_CEILING = 86_400.0


def parse_retry_after(value: str | None, *, now: Callable[[], float] = time) -> float | None:
    """Return the seconds a ``Retry-After`` header asks for, or ``None`` if absent or garbled.

    RFC 9110 allows delay-seconds (what the API sends) or an HTTP date, which is
    always GMT: one without a zone (``-0000``) is not read in the local zone.
    The result is at most :data:`RETRY_AFTER_CEILING`.
    """
    if not value:
        return None
    value = value.strip()
    # str.isdigit() is true of "²" too, which float() refuses: ASCII digits only.
    if value.isascii() and value.isdigit():
        return min(float(value), RETRY_AFTER_CEILING)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return min(max(0.0, moment.timestamp() - now()), RETRY_AFTER_CEILING)


@dataclass(frozen=True)
class RetryPolicy:
    """The documented policy: honour ``Retry-After`` on 429, back off on 5xx and transport errors.

    ``attempt`` counts retries already made (0 before the first retry). Other
    4xx answers and malformed bodies are never retried: repeating the same
    request cannot fix them.
    """

    max_retries: int = 3
    backoff_base: float = 0.5
    backoff_cap: float = 30.0
    max_retry_after: float = 120.0

    def backoff(
        self, attempt: int, uniform: Callable[[float, float], float] = random.uniform
    ) -> float:
        """Full-jitter exponential backoff: ``uniform(0, min(cap, base * 2**attempt))``."""
        return uniform(0.0, min(self.backoff_cap, self.backoff_base * 2**attempt))

    def delay(
        self,
        error: NeuralDraftError,
        attempt: int,
        uniform: Callable[[float, float], float] = random.uniform,
    ) -> float | None:
        """Return the seconds to wait before retrying after ``error``, or ``None`` to raise it.

        A ``Retry-After`` longer than ``max_retry_after`` raises at once rather
        than blocking a worker for longer than the caller budgeted.
        """
        if attempt >= self.max_retries:
            return None
        if isinstance(error, RateLimitedError):
            if error.retry_after is None:
                return self.backoff(attempt, uniform)
            return error.retry_after if error.retry_after <= self.max_retry_after else None
        if isinstance(error, (ServerError, TransportError)):
            return self.backoff(attempt, uniform)
        return None

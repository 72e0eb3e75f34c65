"""The per-project token bucket behind ``429 rate_limited`` and the ``X-RateLimit-*`` headers."""

from __future__ import annotations

import math
import time


class TokenBucket:
    """``burst`` tokens, refilled at ``per_minute / 60`` per second; one token per request.

    The docs describe a sliding 60 s window with a burst; a token bucket gives
    the same steady rate and burst without keeping a timestamp per request.
    Not locked: the store calls it under its own lock.
    """

    def __init__(self, per_minute: int, burst: int) -> None:
        self.per_minute = per_minute
        self.burst = burst
        self._rate = per_minute / 60
        self._tokens = float(burst)
        self._updated = time.monotonic()

    def _refill(self) -> None:
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._updated) * self._rate)
        self._updated = now

    def take(self) -> bool:
        """Spend a token if one is there; ``False`` means answer 429."""
        self._refill()
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False

    def retry_after(self) -> int:
        """Whole seconds until a token is back (at least 1, as a ``Retry-After`` value)."""
        self._refill()
        return max(1, math.ceil((1 - self._tokens) / self._rate))

    def headers(self) -> dict[str, str]:
        """``X-RateLimit-*`` now; ``Reset`` is when the bucket is full again (Unix seconds)."""
        self._refill()
        refill_seconds = (self.burst - self._tokens) / self._rate
        return {
            "X-RateLimit-Limit": str(self.burst),
            "X-RateLimit-Remaining": str(int(self._tokens)),
            "X-RateLimit-Reset": str(math.ceil(time.time() + refill_seconds)),
        }

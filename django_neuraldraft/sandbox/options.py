"""The sandbox's knobs, validated once when a server is built."""

from __future__ import annotations

from dataclasses import dataclass

from django_neuraldraft.sandbox.images import RENDER_FORMATS


@dataclass(frozen=True)
class Options:
    """Behaviour settings of one sandbox; see :class:`~.server.SandboxServer` for each."""

    job_seconds: float = 3.0
    image_long_edge: int = 2048
    image_format: str = "jpeg"
    rate_limit: int | None = 1000
    rate_burst: int | None = None
    credits: int = 1_000_000
    sse_heartbeat: float = 15.0
    webhook_retry_scale: float = 1.0
    webhook_timeout: float = 30.0

    def __post_init__(self) -> None:
        problems = []
        if self.job_seconds < 0:
            problems.append("job_seconds must not be negative")
        if not 16 <= self.image_long_edge <= 8192:
            problems.append("image_long_edge must be between 16 and 8192")
        if self.image_format not in RENDER_FORMATS:
            problems.append(f"image_format must be one of {', '.join(map(repr, RENDER_FORMATS))}")
        if self.rate_limit is not None and self.rate_limit < 1:
            problems.append("rate_limit must be a positive number of requests per minute, or None")
        if self.rate_burst is not None and self.rate_burst < 1:
            problems.append("rate_burst must be positive, or None for twice rate_limit")
        if self.credits < 0:
            problems.append("credits must not be negative")
        if self.sse_heartbeat <= 0:
            problems.append("sse_heartbeat must be positive")
        if self.webhook_retry_scale < 0:
            problems.append("webhook_retry_scale must not be negative")
        if self.webhook_timeout <= 0:
            problems.append("webhook_timeout must be positive")
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def burst(self) -> int | None:
        """The bucket size: ``rate_burst``, or twice ``rate_limit`` as on every documented plan."""
        if self.rate_limit is None:
            return None
        return self.rate_burst if self.rate_burst is not None else 2 * self.rate_limit

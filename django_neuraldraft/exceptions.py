"""Every error a site using django-neuraldraft may catch, importable from one place.

The client's API errors are re-exported here. The configuration error is
deliberately not a ``NeuralDraftError``: a broad ``except NeuralDraftError`` in
a task must never swallow a misconfigured project.
"""

from django.core.exceptions import ImproperlyConfigured

from .client.errors import (
    APIError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    DownloadError,
    DownloadRefusedError,
    DownloadTooLargeError,
    IdempotencyConflictError,
    InsufficientCreditsError,
    MalformedResponseError,
    NeuralDraftError,
    NotFoundError,
    PermissionDeniedError,
    PlanRequiredError,
    RateLimitedError,
    ResponseTooLargeError,
    ServerError,
    TransportError,
    ValidationFailedError,
)

__all__ = [
    "APIError",
    "AuthenticationError",
    "BadRequestError",
    "BrokerUnavailableError",
    "ConflictError",
    "CreditBudgetExceededError",
    "DownloadError",
    "DownloadRefusedError",
    "DownloadTooLargeError",
    "IdempotencyConflictError",
    "InsufficientCreditsError",
    "InvalidImageError",
    "MalformedResponseError",
    "NeuralDraftConfigurationError",
    "NeuralDraftError",
    "NotFoundError",
    "PermissionDeniedError",
    "PlanRequiredError",
    "RateLimitedError",
    "ResponseTooLargeError",
    "ServerError",
    "TransportError",
    "ValidationFailedError",
]


class NeuralDraftConfigurationError(ImproperlyConfigured):
    """A ``NEURALDRAFT`` setting is missing or wrong; the message says what to set."""


class InvalidImageError(DownloadError):
    """The downloaded bytes are not an image we keep: wrong type, corrupt, or too many pixels."""


class CreditBudgetExceededError(Exception):
    """A generation or an upload would pass ``DAILY_CREDIT_BUDGET``; nothing was sent."""


class BrokerUnavailableError(Exception):
    """A job was saved but its task could not be queued: the Celery broker is unreachable.

    Nothing is lost: ``sweep_stale_jobs`` queues the job once the broker is back.
    """

    def __init__(self, job_pk: int, task_name: str, cause: BaseException) -> None:
        self.job_pk = job_pk
        self.task_name = task_name
        super().__init__(
            f"Job #{job_pk} is saved, but its {task_name} task could not be queued: the Celery "
            f"broker is unreachable ({cause}). The sweep task (neuraldraft.sweep_stale_jobs) "
            "will send it once the broker is back."
        )

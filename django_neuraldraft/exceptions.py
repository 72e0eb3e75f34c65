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
    """A generation would pass ``NEURALDRAFT["DAILY_CREDIT_BUDGET"]``; nothing was sent."""

"""Sending the package's signals once the change they announce has committed.

A receiver is the site's code (a CDN purge, a notification) and may fail. It
is told about work that is done: the row has committed, and an exception
raised from the commit would reach the caller as if the work had failed (an
ingest would clean up after it, deleting the file the row shows). So every
receiver is called through ``send_robust``, and the error of one that raises
is logged, its text through :func:`.remote.clean_text`, since it may quote a
remote answer.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from django.dispatch import Signal

from .. import limits
from .remote import clean_text

logger = logging.getLogger(__name__)


def send_on_commit(signal: Signal, sender: type, **named: Any) -> None:
    """Send ``signal`` once the current transaction commits; a receiver's error is only logged."""
    transaction.on_commit(lambda: _send(signal, sender, named))


def _send(signal: Signal, sender: type, named: dict[str, Any]) -> None:
    for receiver, result in signal.send_robust(sender=sender, **named):
        if isinstance(result, Exception):
            logger.error(
                "A receiver of a signal from %s, %s.%s, failed: %s",
                sender.__name__,
                receiver.__module__,
                # A callable object or a functools.partial has no name of its own.
                getattr(receiver, "__qualname__", type(receiver).__qualname__),
                clean_text(f"{type(result).__name__}: {result}", limits.ERROR_MESSAGE_MAX_LENGTH),
            )

"""Signals a site can connect to, sent after the database change they announce has committed.

Each is sent with ``send_robust`` (:mod:`django_neuraldraft.services.announce`):
a receiver that raises neither fails nor undoes the change it was told about,
nor keeps the other receivers from running; its error is logged.
"""

from typing import Any

from django.dispatch import Signal


class AnnouncedSignal(Signal):
    """A signal whose sender, not Django, logs the error of a receiver that raised.

    Django's ``send_robust`` logs the error as raised, traceback and all; its
    text may quote a remote answer (a CDN's error page), which reaches no log
    unescaped here. The sender logs it cleaned instead.
    """

    def _log_robust_failure(self, receiver: Any, err: Exception) -> None:
        return None


#: A new image was bound to its key.
#: Sent with ``sender=ImageVersion`` and the arguments ``image_key`` (ImageKey)
#: and ``version`` (the ImageVersion now on show).
image_ready = AnnouncedSignal()

#: A job ended failed: at Neural Draft, or locally (image rejected, gave up waiting).
#: Sent with ``sender=Job`` and the argument ``job``; ``job.error_code`` and
#: ``job.error_message`` say why.
job_failed = AnnouncedSignal()

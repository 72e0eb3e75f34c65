"""Signals a site can connect to, sent after the database change they announce has committed."""

from django.dispatch import Signal

#: A new image was bound to its key.
#: Sent with ``sender=ImageVersion`` and the arguments ``image_key`` (ImageKey)
#: and ``version`` (the ImageVersion now on show).
image_ready = Signal()

#: A job ended failed: at Neural Draft, or locally (image rejected, gave up waiting).
#: Sent with ``sender=Job`` and the argument ``job``; ``job.error_code`` and
#: ``job.error_message`` say why.
job_failed = Signal()

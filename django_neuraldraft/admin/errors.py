"""How an error reads in an admin message: enough for support, never a secret."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

from ..client.errors import redact
from ..exceptions import NeuralDraftError


def describe_error(err: Exception) -> str:
    """One line for ``message_user``: the API's code, detail and request id when it sent them.

    Everything passes through :func:`~django_neuraldraft.client.errors.redact`,
    so an API key quoted back by a server or a proxy is shown masked.
    """
    if isinstance(err, ValidationError):
        return " ".join(err.messages)
    if not isinstance(err, NeuralDraftError):
        return redact(str(err))
    text = redact(err.detail or err.message or type(err).__name__)
    if err.code:
        text = f"{err.code}: {text}"
    if err.request_id:
        text = _("%(text)s (request id %(request_id)s)") % {
            "text": text,
            "request_id": redact(err.request_id),
        }
    return text

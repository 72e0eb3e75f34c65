"""Registering this site's webhook endpoint with Neural Draft."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from ..exceptions import NeuralDraftConfigurationError
from .remote import get_client

IMAGE_GENERATED = "image.generated"
_SECRET = re.compile(r"whsec_[A-Za-z0-9_]{1,200}")
_ENDPOINT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


@dataclass(frozen=True)
class RegisteredEndpoint:
    """The endpoint Neural Draft created; ``signing_secret`` is shown this once only."""

    id: str
    url: str
    signing_secret: str


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def validate_webhook_url(url: str) -> None:
    """Raise ``ValueError`` unless ``url`` is an absolute https URL (http on loopback)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{url!r} is not an absolute http(s) URL.")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise ValueError(f"{url!r} must use https: Neural Draft posts signed events to it.")


def register_webhook(url: str) -> RegisteredEndpoint:
    """Ask Neural Draft to post ``image.generated`` events to ``url``; nothing is stored here.

    The URL is checked before anything is sent. The secret comes back once:
    the caller shows it to a person, who puts it in ``WEBHOOK_SECRET``.
    """
    validate_webhook_url(url)
    endpoint = get_client().create_webhook_endpoint(url, events=(IMAGE_GENERATED,))
    secret, endpoint_id = endpoint["signing_secret"], endpoint["id"]
    # Both are printed to a person's terminal: nothing but the expected characters.
    if not _SECRET.fullmatch(secret):
        raise NeuralDraftConfigurationError(
            "Neural Draft answered with a signing secret that is not whsec_ followed by "
            "letters, digits or _; see docs/webhooks.rst."
        )
    if not _ENDPOINT_ID.fullmatch(endpoint_id):
        raise NeuralDraftConfigurationError(
            "Neural Draft answered with an endpoint id that is not 1 to 64 letters, digits, "
            "_ or -; see docs/webhooks.rst."
        )
    return RegisteredEndpoint(endpoint_id, url, secret)

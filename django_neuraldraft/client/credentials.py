"""The API key format, and the one way a key is ever shown to a person."""

from __future__ import annotations

import re

#: ``ndsk_<env>_<secret>``: env is ``live`` or ``test``, secret is 32 base62 characters.
API_KEY_PATTERN = re.compile(r"ndsk_(?P<env>live|test)_[0-9A-Za-z]{32}")

#: Anything that looks like a key of any length, to mask whole wherever it appears:
#: a key of another shape (a new format, a truncated or padded echo) is still a secret.
KEY_LIKE_PATTERN = re.compile(r"ndsk_(?P<env>live|test)_[0-9A-Za-z]+")

_SHOWN_TAIL = 4


def mask_api_key(api_key: str | None) -> str:
    """Return ``api_key`` as ``ndsk_live_…7yQp``: enough to tell keys apart, never enough to use.

    Anything that does not look like a Neural Draft key is masked whole, so a
    secret pasted into the wrong setting is not echoed back either.
    """
    if not api_key:
        return "<no key>"
    match = API_KEY_PATTERN.fullmatch(api_key)
    if match is None or len(api_key) <= _SHOWN_TAIL:
        return "…"
    return f"ndsk_{match['env']}_…{api_key[-_SHOWN_TAIL:]}"


def key_environment(api_key: str) -> str | None:
    """Return ``"live"`` or ``"test"`` for a well-formed key, ``None`` for anything else."""
    match = API_KEY_PATTERN.fullmatch(api_key or "")
    return match["env"] if match else None

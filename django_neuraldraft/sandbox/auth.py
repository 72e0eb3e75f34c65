"""Bearer-key authentication: any well-formed test key is let in, nothing else is."""

from __future__ import annotations

from django_neuraldraft.client.credentials import API_KEY_PATTERN

#: The key the sandbox advertises. Any ``ndsk_test_`` key of the right shape works too.
SANDBOX_API_KEY = "ndsk_test_SandboxKey0000000000000000000000"


def authentication_failure(authorization: str | None) -> str | None:
    """Return why ``authorization`` is refused, or ``None`` when it carries a usable test key.

    Live keys are refused even when well formed: the sandbox must never look
    like a place where a production key belongs.
    """
    if not authorization:
        return "Missing Authorization header. Send 'Authorization: Bearer ndsk_test_…'."
    scheme, _, key = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        return "The Authorization header must use the Bearer scheme."
    match = API_KEY_PATTERN.fullmatch(key.strip())
    if match is None:
        return "The API key is malformed."
    if match["env"] != "test":
        return "The sandbox accepts only test keys (ndsk_test_…), never live keys."
    return None

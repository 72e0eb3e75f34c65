"""A local stand-in for the Neural Draft HTTP API, for tests and offline development.

Like stripe-mock or moto: a real HTTP server on loopback that answers as the
API does, with knobs for speed (``job_seconds``) and fault injection.
"""

from django_neuraldraft.sandbox.auth import SANDBOX_API_KEY
from django_neuraldraft.sandbox.server import SandboxServer

__all__ = ["SANDBOX_API_KEY", "SandboxServer"]

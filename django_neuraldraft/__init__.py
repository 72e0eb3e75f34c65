"""Generate images with Neural Draft and serve them from your own storage, by key."""

from typing import Any

__version__ = "0.1.0.dev0"


def __getattr__(name: str) -> Any:
    # ``django_neuraldraft.generate`` without importing Django when the package is imported.
    if name == "generate":
        from .services import generate

        return generate
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

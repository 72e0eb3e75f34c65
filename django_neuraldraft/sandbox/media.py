"""Stored images by key, and the CDN objects (blobs) whose bytes they point at."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django_neuraldraft.sandbox.timestamps import rfc3339

PROJECT_ID = "prj_sandbox"
CDN_PREFIX = f"/cdn/{PROJECT_ID}/"


def cdn_path(stem: str, digest: str, extension: str) -> str:
    """``/cdn/prj_sandbox/<stem>-<8 hex>.<ext>``; the digest part changes with the content."""
    return f"{CDN_PREFIX}{stem}-{digest[:8]}.{extension}"


@dataclass
class Blob:
    """One CDN object. Generated blobs keep their render inputs and fill ``data`` lazily."""

    path: str
    mime_type: str
    width: int
    height: int
    data: bytes | None = None
    #: ``(prompt, style, aspect_ratio, (width, height), format)`` for a render not made yet.
    render: tuple[str, str | None, str, tuple[int, int], str] | None = None


@dataclass
class StoredImage:
    """What ``GET /images/{key}`` answers. Replacing keeps ``created_at``."""

    key: str
    url: str
    blob: Blob
    generated: bool
    created_at: float
    updated_at: float

    def to_json(self, size: int) -> dict[str, Any]:
        """The Image object; ``size`` is the byte length, known only once the blob exists."""
        return {
            "key": self.key,
            "url": self.url,
            "width": self.blob.width,
            "height": self.blob.height,
            "bytes": size,
            "mime_type": self.blob.mime_type,
            "generated": self.generated,
            "created_at": rfc3339(self.created_at),
            "updated_at": rfc3339(self.updated_at),
        }

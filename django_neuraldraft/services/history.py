"""A key's past images: which one came before, and which ones may be deleted.

Versions are never overwritten, so rollback is free; this module decides
which of them are only history, and removes those with their files.
"""

from __future__ import annotations

from django.db.models import Q

from ..models import ImageKey, ImageVersion


def previous_version(image_key: ImageKey) -> ImageVersion | None:
    """The newest version made before the one on show; the newest of all when none is on show."""
    versions = image_key.versions.order_by("-created_at", "-pk")
    current = image_key.current
    if current is None:
        return versions.first()
    older = Q(created_at__lt=current.created_at) | Q(
        created_at=current.created_at, pk__lt=current.pk
    )
    return versions.filter(older).first()

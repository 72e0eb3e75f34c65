"""A key's past images: which one came before, and which ones may be deleted.

Versions are never overwritten, so rollback is free; this module decides
which of them are only history, and removes those with their files.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from django.db import transaction
from django.db.models import F, ForeignObjectRel, Q, Window
from django.db.models.functions import RowNumber

from ..models import ImageKey, ImageVersion, Job
from ..storage import storage_for

logger = logging.getLogger(__name__)


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


@dataclass
class Cleanup:
    """The versions a cleanup removes and the files that go with them.

    ``files`` are the names, images and renditions, that no remaining version
    uses; ``bytes`` their size as recorded. ``failed_files`` is filled after
    the commit with the names the storage could not delete (logged too).
    """

    versions: list[ImageVersion]
    files: list[str]
    bytes: int
    failed_files: list[str] = field(default_factory=list)


def removable_versions(keep: int) -> list[ImageVersion]:
    """Past versions beyond the newest ``keep`` of their key that nothing points at.

    A candidate awaiting review is not history: it is never removed and does
    not count among the ``keep``. Anything a foreign key or many-to-many
    anywhere in the project points at stays too: the image on show
    (``ImageKey.current``), a site's own model that references a version.
    """
    if keep < 0:
        raise ValueError("keep must be 0 or more.")
    rank = Window(
        RowNumber(),
        partition_by=[F("image_key_id")],
        order_by=[F("created_at").desc(), F("pk").desc()],
    )
    history = ImageVersion.objects.filter(candidate=False)
    old = history.annotate(rank=rank).filter(rank__gt=keep)
    pks = set(old.values_list("pk", flat=True)) - _pinned_pks()
    return list(
        ImageVersion.objects.filter(pk__in=pks)
        .select_related("image_key")
        .order_by("image_key__key", "-created_at", "-pk")
    )


def _pinned_pks() -> set[int]:
    pinned: set[int] = set()
    for relation in ImageVersion._meta.get_fields(include_hidden=True):
        if not (relation.auto_created and not relation.concrete and relation.is_relation):
            continue
        if not isinstance(relation, ForeignObjectRel) or relation.related_model is None:
            continue
        name = relation.field.name
        pinned.update(
            relation.related_model._base_manager.filter(**{f"{name}__isnull": False})
            .values_list(name, flat=True)
            .distinct()
        )
    return pinned


def remove_old_versions(keep: int, *, dry_run: bool = False) -> Cleanup:
    """Delete the :func:`removable_versions`, then, once committed, their unused files.

    Their jobs stay, for the record and the credit budget, detached from the key.

    The selection is made again under a lock on the keys' rows, the lock that
    ingest and pull take, so an image bound meanwhile is never deleted. With
    ``dry_run`` nothing changes and the result says what would go.
    """
    if dry_run:
        versions = removable_versions(keep)
        return Cleanup(versions, *_unused_files(versions, exclude=versions))
    with transaction.atomic():
        key_pks = {version.image_key_id for version in removable_versions(keep)}
        list(ImageKey.objects.select_for_update().filter(pk__in=key_pks).values_list("pk"))
        versions = removable_versions(keep)
        # A finished job without a version is what the sweep re-ingests; detached
        # from its key, the job stays (its credits still count) but is never
        # downloaded and bound again.
        Job.objects.filter(pk__in=[v.job_id for v in versions if v.job_id]).update(image_key=None)
        ImageVersion.objects.filter(pk__in=[version.pk for version in versions]).delete()
        cleanup = Cleanup(versions, *_unused_files(versions, exclude=[]))
        transaction.on_commit(lambda: _delete_files(cleanup))
    return cleanup


def _files_of(version: ImageVersion) -> dict[str, int]:
    files = {version.file.name or "": version.bytes}
    for rendition in version.renditions or []:
        if isinstance(rendition, dict) and isinstance(rendition.get("name"), str):
            size = rendition.get("bytes")
            files[rendition["name"]] = size if isinstance(size, int) else 0
    for name in version.renditions_writing or []:
        if isinstance(name, str):
            files.setdefault(name, 0)
    return files


def _unused_files(
    versions: list[ImageVersion], *, exclude: list[ImageVersion]
) -> tuple[list[str], int]:
    """Names of ``versions``' files that no other version (outside ``exclude``) uses."""
    sizes: dict[str, int] = {}
    for version in versions:
        sizes.update(_files_of(version))
    others = ImageVersion.objects.exclude(pk__in=[version.pk for version in exclude])
    used = set(others.filter(file__in=list(sizes)).values_list("file", flat=True))
    for renditions in (
        others.exclude(renditions=[]).values_list("renditions", flat=True).iterator()
    ):
        used.update(
            rendition["name"]
            for rendition in renditions or []
            if isinstance(rendition, dict) and isinstance(rendition.get("name"), str)
        )
    unused = [name for name in sizes if name and name not in used]
    return unused, sum(sizes[name] for name in unused)


def _delete_files(cleanup: Cleanup) -> None:
    # Each file goes from the storage its version was saved to (STORAGE may have changed since).
    aliases = {
        name: version.storage_alias for version in cleanup.versions for name in _files_of(version)
    }
    for name in cleanup.files:
        try:
            storage_for(aliases.get(name)).delete(name)
        except Exception:  # a storage backend raises what it likes; the rows are gone already
            logger.warning("Could not delete %s from the storage.", name, exc_info=True)
            cleanup.failed_files.append(name)

"""A key's past images: which one came before, and which ones may be deleted.

Versions are never overwritten, so rollback is free; this module decides
which of them are only history, and removes those with their files.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field

from django.db import transaction
from django.db.models import F, ForeignObjectRel, Q, QuerySet, Window
from django.db.models.functions import RowNumber

from .. import conf
from ..models import ImageKey, ImageVersion, Job
from ..storage import delete_file, storage_for

#: The columns :func:`_files_of` reads.
_NAMING_FIELDS = (
    "storage_alias",
    "file",
    "bytes",
    "renditions",
    "renditions_writing",
    "renditions_dropped",
)


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
    uses; ``bytes`` their size as recorded; ``failed_files`` those the storage
    could not delete (logged too). Once the deletion has committed, all three
    are what :func:`delete_unused_files` found then: a file bound again in
    between is no longer among them.
    """

    versions: list[ImageVersion]
    files: list[str]
    bytes: int
    failed_files: list[str] = field(default_factory=list)


@dataclass
class DeletedFiles:
    """What :func:`delete_unused_files` found unused: the names, their size, and the failures."""

    files: list[str] = field(default_factory=list)
    bytes: int = 0
    failed: list[str] = field(default_factory=list)


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

    Their jobs stay, for the record, detached from the key.

    The selection is made again under a lock on the keys' rows, the lock that
    ingest and pull take, so an image bound meanwhile is never deleted; the
    files are chosen after the commit by :func:`delete_unused_files`, so one
    bound again in between keeps its file. With ``dry_run`` nothing changes
    and the result says what would go.
    """
    if dry_run:
        versions = removable_versions(keep)
        return Cleanup(versions, *_unused_files(versions, exclude=versions))
    with transaction.atomic():
        key_pks = {version.image_key_id for version in removable_versions(keep)}
        _lock_keys(ImageKey.objects.filter(pk__in=key_pks))
        versions = removable_versions(keep)
        # A finished job without a version is what the sweep re-ingests; detached
        # from its key, the job stays for the record but is never downloaded
        # and bound again.
        Job.objects.filter(pk__in=[v.job_id for v in versions if v.job_id]).update(image_key=None)
        ImageVersion.objects.filter(pk__in=[version.pk for version in versions]).delete()
        cleanup = Cleanup(versions, *_unused_files(versions, exclude=[]))
        transaction.on_commit(lambda: _fill(cleanup, delete_unused_files(versions)))
    return cleanup


def _fill(cleanup: Cleanup, deleted: DeletedFiles) -> None:
    cleanup.files, cleanup.bytes = deleted.files, deleted.bytes
    cleanup.failed_files = deleted.failed


def delete_unused_files(versions: Sequence[ImageVersion]) -> DeletedFiles:
    """Delete the files of ``versions``, whose rows are gone, that no version uses.

    Call it once the deletion has committed, never before: a row that rolled
    back would name a deleted file. In between, an upload, pull or ingest of
    the same bytes may bind a new version to the same content-addressed file,
    so the files are chosen here, under the row locks of the versions' keys
    (by id, and by name for a key deleted and created again): the lock
    :func:`~.versions.store_version` runs under. A store that committed first
    keeps its file; one that waits for the lock writes the file again.

    A file is used while a version names it as its image, a recorded
    rendition, a rendition being written or one the settings dropped, in the
    storage that version recorded. The versions' keys must be loaded
    (``select_related``). A storage that cannot delete a file is logged and
    the name is in ``failed``.
    """
    files = _files_in_storages(versions)
    deleted = DeletedFiles()
    with transaction.atomic():
        _lock_keys(
            ImageKey.objects.filter(
                Q(pk__in={version.image_key_id for version in versions})
                | Q(key__in={version.image_key.key for version in versions})
            )
        )
        used = _in_use(files)
        for (alias, name), size in files.items():
            if (alias, name) in used:
                continue
            deleted.files.append(name)
            deleted.bytes += size
            if not delete_file(storage_for(alias), name):
                deleted.failed.append(name)
    return deleted


def _lock_keys(keys: QuerySet[ImageKey]) -> None:
    list(keys.select_for_update().order_by("pk").values_list("pk"))


def _files_of(version: ImageVersion) -> dict[str, int]:
    """Every file ``version`` names, with its recorded size (0 where none is recorded)."""
    files = {version.file.name or "": version.bytes}
    for rendition in version.renditions or []:
        if isinstance(rendition, dict) and isinstance(rendition.get("name"), str):
            size = rendition.get("bytes")
            files[rendition["name"]] = size if isinstance(size, int) else 0
    for name in [*(version.renditions_writing or []), *(version.renditions_dropped or [])]:
        if isinstance(name, str):
            files.setdefault(name, 0)
    files.pop("", None)
    return files


def _files_in_storages(versions: Iterable[ImageVersion]) -> dict[tuple[str, str], int]:
    """The files of ``versions`` by ``(storage alias, name)``: a name may be in two storages."""
    files: dict[tuple[str, str], int] = {}
    for version in versions:
        alias = version.storage_alias or conf.storage_alias()
        files.update({(alias, name): size for name, size in _files_of(version).items()})
    return files


def _unused_files(
    versions: list[ImageVersion], *, exclude: list[ImageVersion]
) -> tuple[list[str], int]:
    """Names of ``versions``' files that no other version (outside ``exclude``) uses, and size."""
    files = _files_in_storages(versions)
    used = _in_use(files, exclude=[version.pk for version in exclude])
    unused = {file: size for file, size in files.items() if file not in used}
    return [name for _alias, name in unused], sum(unused.values())


def _in_use(
    files: Collection[tuple[str, str]], *, exclude: Collection[int] = ()
) -> set[tuple[str, str]]:
    """Which of ``files`` a version (outside ``exclude``) names, by :func:`_files_of`."""
    if not files:
        return set()
    naming = (
        ImageVersion.objects.exclude(pk__in=exclude)
        .filter(
            Q(file__in={name for _alias, name in files})
            | ~Q(renditions=[], renditions_writing=[], renditions_dropped=[])
        )
        .only(*_NAMING_FIELDS)
    )
    used: set[tuple[str, str]] = set()
    for version in naming.iterator():
        used.update(_files_in_storages([version]))
    return used & set(files)

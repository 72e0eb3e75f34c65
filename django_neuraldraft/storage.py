"""The storages images live in: the configured one for new files, the recorded one for old ones.

New files go to ``STORAGES[NEURALDRAFT["STORAGE"]]``; each image version
records that alias, so switching ``STORAGE`` later leaves existing images
served from where they were saved (docs/configuration.rst, "Switching storage").
"""

from __future__ import annotations

import copy
import logging
import os
import re
import sys
from datetime import datetime
from typing import Any

from django.core.files import File
from django.core.files.storage import Storage, storages
from django.db.models.fields.files import ImageField, ImageFieldFile
from django.utils.deconstruct import deconstructible

from . import conf

#: Sent with files whose names hold their content's SHA-256: they never change.
IMMUTABLE_CACHE_CONTROL = "public, max-age=31536000, immutable"

_CONTENT_HASH_NAME = re.compile(r"(?:^|/)[0-9a-f]{64}(?:[/._-]|$)")


logger = logging.getLogger(__name__)


def storage_for(alias: str | None = None) -> Storage:
    """The storage of ``alias``; the configured ``STORAGE`` when ``alias`` is empty."""
    return storages[alias or conf.storage_alias()]


def delete_file(storage: Storage, name: str) -> bool:
    """Delete ``name``; whether the storage did. A refusal is logged, not raised: the
    callers clean up after rows that are gone or never were, which no error may undo."""
    try:
        storage.delete(name)
    except Exception:  # a storage backend raises what it likes
        logger.warning("Could not delete %s from the storage.", name, exc_info=True)
        return False
    return True


def is_content_addressed(name: str) -> bool:
    """Whether ``name`` is named by its content's SHA-256 (a 64-hex-digit file or folder name)."""
    return _CONTENT_HASH_NAME.search(name) is not None


def save_immutable(backend: Storage, name: str, content: Any, max_length: int | None) -> str:
    """Save ``content`` as ``name``, asking the storage to let clients cache it for a year.

    Only django-storages' S3 backend (and its subclasses, which S3-compatible
    services use) takes per-file upload headers, through ``object_parameters``.
    A shallow copy carries the header, so the project's storage object, shared
    between threads, is never changed; a ``CacheControl`` the project sets in
    ``OBJECT_PARAMETERS`` wins. Other storages save the file as they always do.
    """
    s3 = sys.modules.get("storages.backends.s3")
    if s3 is not None and isinstance(backend, s3.S3Storage):
        immutable: Any = copy.copy(backend)  # django-storages ships no type information
        immutable.object_parameters = {
            "CacheControl": IMMUTABLE_CACHE_CONTROL,
            **immutable.object_parameters,
        }
        backend = immutable
    return backend.save(name, content, max_length=max_length)


@deconstructible(path="django_neuraldraft.storage.ConfiguredStorage")
class ConfiguredStorage(Storage):
    """Forward every call to ``STORAGES[NEURALDRAFT["STORAGE"]]``.

    A model field needs one storage object when the model class is built, but
    the alias must be read when a file is touched: at import time settings may
    not be final, and tests switch storages with ``override_settings``. This
    proxy deconstructs to itself, so migrations never record a backend.
    """

    @property
    def backend(self) -> Storage:
        return storage_for()

    def open(self, name: str, mode: str = "rb") -> File:
        return self.backend.open(name, mode)

    def save(self, name: str | None, content: Any, max_length: int | None = None) -> str:
        if name is not None and is_content_addressed(name):
            return save_immutable(self.backend, name, content, max_length)
        return self.backend.save(name, content, max_length=max_length)

    def delete(self, name: str) -> None:
        self.backend.delete(name)

    def exists(self, name: str) -> bool:
        return self.backend.exists(name)

    def listdir(self, path: str) -> tuple[list[str], list[str]]:
        return self.backend.listdir(path)

    def size(self, name: str) -> int:
        return self.backend.size(name)

    def url(self, name: str | None) -> str:
        return self.backend.url(name)

    def path(self, name: str) -> str:
        return self.backend.path(name)

    def get_accessed_time(self, name: str) -> datetime:
        return self.backend.get_accessed_time(name)

    def get_created_time(self, name: str) -> datetime:
        return self.backend.get_created_time(name)

    def get_modified_time(self, name: str) -> datetime:
        return self.backend.get_modified_time(name)

    def get_valid_name(self, name: str) -> str:
        return self.backend.get_valid_name(name)

    def get_available_name(self, name: str, max_length: int | None = None) -> str:
        return self.backend.get_available_name(name, max_length=max_length)

    def generate_filename(self, filename: str | os.PathLike[str]) -> str:
        return self.backend.generate_filename(filename)


class RecordedStorageFile(ImageFieldFile):
    """An image version's file, in the storage its version records (``storage_alias``).

    Django hands every file its field's storage, which follows the setting; a
    version saved before ``STORAGE`` changed must keep its own. The alias is
    read each time, so a version moved to another storage is followed at once.
    """

    @property
    def storage(self) -> Storage:
        return storage_for(getattr(self.instance, "storage_alias", None))

    @storage.setter
    def storage(self, value: Storage) -> None:
        """Ignore the field's storage, which ``FieldFile.__init__``/``__setstate__`` assign."""


class RecordedStorageImageField(ImageField):
    """An ``ImageField`` whose files use :class:`RecordedStorageFile`.

    It deconstructs as a plain ``ImageField``: which storage a file is in is
    data (the ``storage_alias`` column), not schema, so migrations do not name this class.
    """

    attr_class = RecordedStorageFile

    def deconstruct(self) -> Any:
        name, _path, args, kwargs = super().deconstruct()
        return name, "django.db.models.ImageField", args, kwargs

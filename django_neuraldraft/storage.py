"""The storage that downloaded images go to, chosen by alias at call time."""

from __future__ import annotations

from datetime import datetime
from typing import IO, Any

from django.core.files.storage import Storage, storages
from django.utils.deconstruct import deconstructible

from . import conf


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
        return storages[conf.storage_alias()]

    def open(self, name: str, mode: str = "rb") -> IO[Any]:
        return self.backend.open(name, mode)

    def save(self, name: str | None, content: Any, max_length: int | None = None) -> str:
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

    def generate_filename(self, filename: str) -> str:
        return self.backend.generate_filename(filename)

"""Image keys to the data a page needs to show them, through Django's cache, in batches.

Rendering reads only the cache and, on a miss, the database: never the storage
backend and never Neural Draft. The cache holds two kinds of entries:

``neuraldraft:token:<key>``
    A random number, replaced whenever what the key shows may have changed
    (bind, rollback, edit, delete, a job starting or failing), once the change
    has committed.
``neuraldraft:batch:<n>:<digest of the keys>``
    The data of a set of keys, as a template asks for them together, each
    row with the token of its key that was current *before* the row was read
    from the database.

A reader fetches the tokens of its keys and their batch in one ``get_many``
and trusts a row only while its token is still the current one; the rows it
cannot trust are read again, in one query, and the batch is stored anew. A
reader that read the database just before a writer committed may still store
what it read, but under a token the writer has since replaced, so nobody uses
it: a stale read cannot outlive the invalidation that followed it, in any
process that shares the cache. Tokens are random rather than counters, so an
evicted token is replaced by a new one instead of restarting a count that old
rows might match. A page of 50 images reads 51 cache entries.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Any, NamedTuple

from django.core.cache import BaseCache, caches
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models.signals import post_delete, post_save, pre_save

from . import conf
from .keys import validate_image_key
from .models import ImageKey, ImageVersion, Job
from .signals import job_failed
from .storage import ConfiguredStorage, storage_for

logger = logging.getLogger(__name__)

_TOKEN_PREFIX = "neuraldraft:token:"
# The number changes with the shape of the cached rows, so that during a
# deploy old and new code never read each other's entries.
_BATCH_PREFIX = "neuraldraft:batch:1:"

#: Seconds an answer of "a generation is running" is trusted. Jobs end through
#: UPDATE queries, which send no signal; a finished job binds its image (which
#: invalidates) and a failed one sends ``job_failed``, but a cancelled one is
#: only noticed when this runs out.
PENDING_TIMEOUT = 60


class Status:
    """Why a key shows what it shows: the values of :attr:`ImageData.status`."""

    #: The key has an image on show.
    READY = "ready"
    #: The key exists but has no image on show.
    EMPTY = "empty"
    #: The key has no image on show, and a generation is running.
    PENDING = "pending"
    #: No image key of that name exists.
    UNKNOWN = "unknown"
    #: The string is not a valid image key; neither cache nor database was asked.
    INVALID = "invalid"


class ImageData(NamedTuple):
    """Everything a template needs to show one key, from one row, cached as one tuple."""

    key: str
    #: The storage URL of the image on show, or ``""`` when there is none.
    url: str
    width: int | None
    height: int | None
    #: The key's alternative text.
    alt: str
    #: ``#rrggbb`` of the image on show, else of the key's latest image; may be ``""``.
    color: str
    #: The key's aspect ratio, ``""`` when it uses the site default.
    aspect_ratio: str
    #: One of the :class:`Status` values.
    status: str

    @property
    def ready(self) -> bool:
        return self.status == Status.READY


def resolve(key: str) -> ImageData:
    """Return the image data of ``key``; see :func:`resolve_many`."""
    return resolve_many([key])[key]


def resolve_many(keys: Iterable[str]) -> dict[str, ImageData]:
    """Return the image data of every key in ``keys``, missing and invalid ones included.

    One cache round trip for all of them; what the cache misses costs one
    database query in all. Invalid keys touch neither. Never raises for a key
    without an image, and never because the cache is down: then the data
    comes from the database and a warning is logged.
    """
    found: dict[str, ImageData] = {}
    wanted = []
    for key in dict.fromkeys(keys):
        if _is_valid(key):
            wanted.append(key)
        else:
            found[key] = ImageData(key, "", None, None, "", "", "", Status.INVALID)
    if not wanted:
        return found
    cache = caches[conf.cache_alias()]
    token_names = [_TOKEN_PREFIX + key for key in wanted]
    batch_name = _batch_name(wanted)
    cached = _quietly(cache.get_many, [*token_names, batch_name])
    if cached is None:
        found.update(_read(wanted))
        return found
    rows = {row[1]: row for row in cached.get(batch_name, ())}
    tokens: dict[str, int | None] = {}
    trusted: dict[str, ImageData] = {}
    stale = []
    for key, token_name in zip(wanted, token_names, strict=True):
        token = tokens[key] = cached.get(token_name)
        row = rows.get(key)
        if token is not None and row is not None and row[0] == token:
            trusted[key] = ImageData(*row[1:])
        else:
            stale.append(key)
    found.update(trusted)
    if stale:
        found.update(_refill(cache, batch_name, tokens, trusted, stale))
    return found


def _batch_name(keys: list[str]) -> str:
    joined = "\n".join(sorted(keys)).encode()
    return _BATCH_PREFIX + hashlib.blake2b(joined, digest_size=16).hexdigest()


@lru_cache(maxsize=4096)
def _is_valid(key: str) -> bool:
    try:
        validate_image_key(key)
    except ValidationError:
        return False
    return True


def _quietly(call: Callable[..., Any], *args: Any) -> Any:
    """Return ``call(*args)``, or ``None`` after logging if the cache fails.

    The cache only makes pages faster; a cache server that is down must not
    turn every page that shows an image into an error.
    """
    try:
        return call(*args)
    except Exception:
        logger.warning("The Neural Draft image cache failed; using the database.", exc_info=True)
        return None


def _refill(
    cache: BaseCache,
    batch_name: str,
    tokens: dict[str, int | None],
    trusted: dict[str, ImageData],
    stale: list[str],
) -> dict[str, ImageData]:
    """Read the ``stale`` keys from the database and store the whole batch again.

    A key without a token gets one *before* the read, so that every row is
    stored with a token that existed before the row was read.
    """
    timeout = conf.cache_timeout()
    ready_timeout = _ready_timeout(timeout)
    if ready_timeout < timeout:
        # Signed URLs: a trusted row stored again with a new lifetime would keep
        # its URL past the half-life that _ready_timeout allows, so all are read.
        trusted, stale = {}, list(tokens)
    new = {key: secrets.randbits(63) for key in stale if tokens[key] is None}
    names = {_TOKEN_PREFIX + key: token for key, token in new.items()}
    cacheable = not new or _quietly(cache.set_many, names, timeout) is not None
    read = _read(stale)
    if cacheable:
        tokens = {**tokens, **new}
        batch = {**trusted, **read}
        statuses = {data.status for data in batch.values()}
        lifetime = ready_timeout if Status.READY in statuses else timeout
        if Status.PENDING in statuses:
            lifetime = min(lifetime, PENDING_TIMEOUT)
        rows = tuple((tokens[key], *data) for key, data in batch.items())
        _quietly(cache.set, batch_name, rows, lifetime)
    return read


def _read(keys: list[str]) -> dict[str, ImageData]:
    """One query for all ``keys``; the image URLs are computed here, not at render time."""
    found = {key: ImageData(key, "", None, None, "", "", "", Status.UNKNOWN) for key in keys}
    for (
        key,
        alt,
        ratio,
        name,
        width,
        height,
        color,
        pending,
        latest_color,
        storage_alias,
    ) in ImageKey.objects.for_render(keys):
        if name:
            url, status = storage_for(storage_alias).url(name), Status.READY
        else:
            url, width, height, color = "", None, None, latest_color or ""
            status = Status.PENDING if pending else Status.EMPTY
        found[key] = ImageData(key, url, width, height, alt, color, ratio, status)
    return found


def _ready_timeout(timeout: int) -> int:
    """Seconds an image URL may be cached: signed URLs must still work when a page shows them.

    django-storages' S3 backend signs URLs (``querystring_auth``) for
    ``querystring_expire`` seconds; caching one for at most half of that
    leaves every URL a page receives valid for at least the other half.
    """
    storage = ConfiguredStorage().backend
    if getattr(storage, "querystring_auth", False):
        return max(1, min(timeout, int(getattr(storage, "querystring_expire", 3600)) // 2))
    return timeout


def invalidate(*keys: str) -> None:
    """Make every process that shares the cache read ``keys`` from the database on next use.

    The signal receivers call this after each commit that may change what a
    key shows. Call it yourself after changing rows with ``QuerySet.update()``
    or ``bulk_create()``, which send no signals.
    """
    tokens = {_TOKEN_PREFIX + key: secrets.randbits(63) for key in keys if _is_valid(key)}
    if tokens:
        caches[conf.cache_alias()].set_many(tokens, conf.cache_timeout())


def connect_signals() -> None:
    """Invalidate cached keys whenever their rows change; called by ``AppConfig.ready()``."""
    uid = "neuraldraft.resolver"
    pre_save.connect(_key_renaming, sender=ImageKey, dispatch_uid=uid)
    post_save.connect(_key_changed, sender=ImageKey, dispatch_uid=uid)
    post_delete.connect(_key_changed, sender=ImageKey, dispatch_uid=uid)
    post_save.connect(_related_changed, sender=ImageVersion, dispatch_uid=uid)
    post_delete.connect(_related_changed, sender=ImageVersion, dispatch_uid=uid)
    post_save.connect(_related_changed, sender=Job, dispatch_uid=uid)
    job_failed.connect(_job_failed, sender=Job, dispatch_uid=uid)


def _on_commit(using: str | None, call: Callable[[], None]) -> None:
    # robust: a cache that is down while the change commits must not fail the
    # task or request that made the change; the error is logged. Django's log
    # line needs the callback's __qualname__, which a functools.partial lacks.
    transaction.on_commit(call, using=using, robust=True)


def _key_renaming(
    sender: type[ImageKey],
    instance: ImageKey,
    using: str,
    update_fields: Any = None,
    **kwargs: Any,
) -> None:
    if instance.pk is None or (update_fields is not None and "key" not in update_fields):
        return
    old = sender._base_manager.using(using).filter(pk=instance.pk).values_list("key", flat=True)
    old_key = old.first()
    if old_key is not None and old_key != instance.key:
        _on_commit(using, lambda: invalidate(old_key))


def _key_changed(sender: type[ImageKey], instance: ImageKey, using: str, **kwargs: Any) -> None:
    key = instance.key
    _on_commit(using, lambda: invalidate(key))


def _related_changed(
    sender: type[ImageVersion] | type[Job], instance: Any, using: str | None, **kwargs: Any
) -> None:
    """An image version or job changed: what its key shows may have changed too."""
    if instance.image_key_id is None:
        return
    if sender.image_key.is_cached(instance):
        key = instance.image_key.key
        _on_commit(using, lambda: invalidate(key))
    else:
        pk = instance.image_key_id
        _on_commit(using, lambda: _invalidate_pk(pk, using))


def _invalidate_pk(pk: int, using: str | None) -> None:
    # Looked up after the commit: a key deleted with its versions is gone by
    # then, and its own post_delete has invalidated it already.
    invalidate(*ImageKey._base_manager.using(using).filter(pk=pk).values_list("key", flat=True))


def _job_failed(sender: type[Job], job: Job, **kwargs: Any) -> None:
    _related_changed(Job, job, using=job._state.db)


class RenderMemo:
    """The images one render has resolved, so that each key costs one lookup per page.

    Template tags keep one in the render context and pass, with the first key
    they need, every other key their template names, so a template costs one
    cache round trip however many images it shows.
    """

    __slots__ = ("_found",)

    def __init__(self) -> None:
        self._found: dict[str, ImageData] = {}

    def get(self, key: Any, batch: Iterable[str] = ()) -> ImageData:
        """Return the data of ``key``; if it is new, resolve it together with ``batch``.

        ``key`` may also be an :class:`ImageData` (from :func:`resolve_many`
        in a view), which is returned as it is; anything else is made a string.
        """
        if isinstance(key, ImageData):
            return key
        if not isinstance(key, str):
            key = str(key)
        data = self._found.get(key)
        if data is None:
            found = self._found
            found.update(resolve_many([key, *(k for k in batch if k not in found)]))
            data = found[key]
        return data

"""Image keys to the data a page needs to show them, through Django's cache, in batches.

Rendering reads only the cache and, on a miss, the database: never the storage
backend and never Neural Draft. Image URLs (renditions included) are computed
when an entry is filled. The cache holds two kinds of entries:

``neuraldraft:generation``
    A random number, replaced after every change that may alter what any key
    shows (bind, rollback, edit, delete, a job starting or failing) has
    committed.
``neuraldraft:batch:2:<digest of the keys>``
    The data of a set of keys, as a page asks for them together, with the
    generation that was current *before* the data was read from the database.

A reader fetches the generation and the batch in one ``get_many`` and trusts
the batch only while its generation is still the current one; otherwise it
reads the whole batch again in one query. A reader that read the database just
before a writer committed may still store what it read, but under a generation
the writer has since replaced, so nobody uses it: a stale read cannot outlive
the invalidation that followed it. Generations are random rather than counters,
so an evicted generation is replaced by a new one instead of restarting a count
that old entries might match. A page reads two cache entries whatever its size;
a process keeps the batches it has read (:data:`LOCAL_BATCHES`) and then reads
only the generation.

A per-process cache (``LocMemCache``) cannot see the generation that another
process (the worker) replaced. With one, the generation is the
:class:`~django_neuraldraft.models.ChangeToken` row instead, read with one
small query per render; see :func:`cache_is_shared`.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from functools import lru_cache
from typing import Any, NamedTuple, TypeGuard

from django.core.cache import BaseCache, caches
from django.core.cache.backends.dummy import DummyCache
from django.core.cache.backends.locmem import LocMemCache
from django.core.cache.backends.redis import RedisCache
from django.db import transaction
from django.db.models.signals import post_delete, post_save, pre_save

from . import conf
from .keys import is_valid_image_key
from .models import ChangeToken, ImageKey, ImageVersion, Job
from .signals import job_failed
from .storage import ConfiguredStorage, storage_for

logger = logging.getLogger(__name__)

_GENERATION = "neuraldraft:generation"
# The number changes with the shape of the cached data, so that during a
# deploy old and new code never read each other's entries.
_BATCH_PREFIX = "neuraldraft:batch:2:"

#: Seconds an answer of "a generation is running" is trusted. Jobs end through
#: UPDATE queries, which send no signal; a finished job binds its image (which
#: invalidates) and a failed one sends ``job_failed``, but a cancelled one is
#: only noticed when this runs out.
PENDING_TIMEOUT = 60

#: Batches a process keeps in memory, checked against the shared generation
#: before each use, so that a warm page reads one small cache entry.
LOCAL_BATCHES = 256

#: ``ImageVersion.mime_type`` to the rendition format of the same kind.
FORMATS = {
    "image/avif": "avif",
    "image/webp": "webp",
    "image/jpeg": "jpeg",
    "image/png": "png",
    "image/gif": "gif",
}
_MIME_TYPES = {value: key for key, value in FORMATS.items()}

#: The formats a ``<picture>`` offers as ``<source>``, best first.
SOURCE_FORMATS = ("avif", "webp")


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
    #: ``url 640w, ...``: the renditions in the image's own format and the image
    #: itself at its width; ``""`` when the image has no renditions.
    srcset: str = ""
    #: ``(("image/avif", srcset), ("image/webp", srcset))``, each only when the
    #: image has renditions in that format (other than its own).
    sources: tuple[tuple[str, str], ...] = ()

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
    comes from the database and a warning is logged. A view may put the
    result in the template context: the tags render an ``ImageData`` without
    any lookup.
    """
    return _resolve(keys, _Token())


def cache_is_shared(alias: str | None = None) -> bool:
    """Whether every process of the site sees the same ``CACHE_ALIAS`` cache.

    ``SHARED_CACHE`` when set; otherwise true for every backend but
    ``LocMemCache`` and ``DummyCache``, which live inside one process.
    """
    configured = conf.shared_cache()
    if configured is not None:
        return bool(configured)
    return not is_per_process(caches[alias or conf.cache_alias()])


def is_per_process(cache: BaseCache) -> bool:
    """Whether ``cache`` lives inside one process, where another process cannot reach it."""
    return isinstance(cache, (LocMemCache, DummyCache))


class _Token:
    """The :class:`ChangeToken` value, read at most once per render and only when needed."""

    __slots__ = ("_value",)

    _UNREAD = object()

    def __init__(self) -> None:
        self._value: Any = self._UNREAD

    def value(self) -> int | None:
        if self._value is self._UNREAD:
            self._value = ChangeToken.objects.filter(pk=1).values_list("value", flat=True).first()
        return self._value


def _resolve(keys: Iterable[str], token: _Token) -> dict[str, ImageData]:
    found: dict[str, ImageData] = {}
    wanted = []
    for key in dict.fromkeys(keys):
        if _is_valid(key):
            wanted.append(key)
        else:
            found[key] = ImageData(key, "", None, None, "", "", "", Status.INVALID)
    if wanted:
        found.update(_lookup(wanted, token))
    return found


#: Batches read in this process: ``(alias, name) -> (generation, data, expiry)``.
_local: dict[tuple[str, str], tuple[int, dict[str, ImageData], float]] = {}


def _lookup(wanted: list[str], token: _Token) -> Mapping[str, ImageData]:
    """The data of ``wanted``, all valid keys, from the cache or else in one query.

    An entry is ``(generation, data, expiry)``; the expiry (wall-clock time)
    travels with it, so a copy kept in this process never outlives the
    lifetime the entry was stored with (signed URLs).
    """
    alias = conf.cache_alias()
    cache = caches[alias]
    if isinstance(cache, DummyCache):
        return _read(wanted)
    name = _batch_name(tuple(wanted))
    shared = cache_is_shared(alias)
    if shared:
        generation, entry = _shared_entry(cache, name, _local.get((alias, name)))
    else:
        generation = token.value()
        entry = None if generation is None else _quietly(cache.get, name)
    if generation is None:
        return _read(wanted)
    if _is_current(entry, generation):
        if shared:
            _remember((alias, name), entry)
        return entry[1]
    data = _read(wanted)
    lifetime = _lifetime(data.values())
    entry = (generation, data, time.time() + lifetime)
    _quietly(cache.set, name, entry, lifetime)
    if shared:
        _remember((alias, name), entry)
    return data


def _is_current(entry: Any, generation: int) -> TypeGuard[tuple[Any, ...]]:
    """Whether ``entry`` is a batch stored under ``generation`` and not yet expired.

    Anything else under the batch's name (another program's value, a cache
    that lost part of it) is treated as a miss.
    """
    return (
        isinstance(entry, tuple)
        and len(entry) == 3
        and entry[0] == generation
        and isinstance(entry[2], float)
        and entry[2] > time.time()
    )


def _shared_entry(
    cache: BaseCache, name: str, local: tuple | None
) -> tuple[int | None, tuple | None]:
    """The current generation and the batch ``name``, in one round trip when possible.

    With a ``local`` copy only the generation is read. Without a current
    generation, a new one is stored *before* the caller reads the database,
    so that what it reads is never older than its generation. ``(None,
    None)`` when the cache fails.
    """
    cached = _quietly(_get_many, cache, [_GENERATION] if local else [_GENERATION, name])
    if cached is None:
        return None, None
    generation = cached.get(_GENERATION)
    if generation is None:
        generation = secrets.randbits(63)
        failed = _quietly(cache.set_many, {_GENERATION: generation}, None)
        return (None if failed is None or failed else generation), None
    if local is None:
        return generation, cached.get(name)
    if local[0] == generation:
        return generation, local
    return generation, _quietly(cache.get, name)


#: One redis-py client per Django RedisCache client, for reads.
_redis_readers: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


def _get_many(cache: BaseCache, names: list[str]) -> dict[str, Any]:
    """``cache.get_many(names)``, with a redis-py client kept for Django's ``RedisCache``.

    Django's ``RedisCache`` builds a new ``redis.Redis`` for every call, about
    half the cost of a warm page's one read (docs/benchmarks.rst); the client
    is thread-safe and its pool survives forks, so reads reuse one. Anything
    but that exact backend, or a Django whose client lacks what this needs,
    goes through ``get_many``.
    """
    client = getattr(cache, "_cache", None) if type(cache) is RedisCache else None
    serializer = getattr(client, "_serializer", None)
    if client is None or serializer is None:
        return cache.get_many(names)
    reader = _redis_readers.get(client)
    if reader is None:
        reader = _redis_readers[client] = client.get_client(None, write=False)
    values = reader.mget([cache.make_and_validate_key(name) for name in names])
    return {
        name: serializer.loads(value)
        for name, value in zip(names, values, strict=True)
        if value is not None
    }


def _remember(name: tuple[str, str], entry: tuple) -> None:
    if _local.get(name) is entry:
        return
    _local.pop(name, None)
    if len(_local) >= LOCAL_BATCHES:
        # The oldest first: dicts keep insertion order.
        _local.pop(next(iter(_local), name), None)
    _local[name] = entry


def _lifetime(batch: Iterable[ImageData]) -> int:
    timeout = conf.cache_timeout()
    statuses = {data.status for data in batch}
    lifetime = _ready_timeout(timeout) if Status.READY in statuses else timeout
    if Status.PENDING in statuses:
        lifetime = min(lifetime, PENDING_TIMEOUT)
    return lifetime


@lru_cache(maxsize=1024)
def _batch_name(keys: tuple[str, ...]) -> str:
    joined = "\n".join(sorted(keys)).encode()
    return _BATCH_PREFIX + hashlib.blake2b(joined, digest_size=16).hexdigest()


_is_valid = lru_cache(maxsize=4096)(is_valid_image_key)


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


def _read(keys: list[str]) -> dict[str, ImageData]:
    """One query for all ``keys``; every URL is computed here, not at render time."""
    found = {key: ImageData(key, "", None, None, "", "", "", Status.UNKNOWN) for key in keys}
    for (
        key,
        alt,
        ratio,
        name,
        width,
        height,
        color,
        mime_type,
        renditions,
        pending,
        latest_color,
        storage_alias,
    ) in ImageKey.objects.for_render(keys):
        if name:
            # Renditions live beside their original, in the storage it was saved to.
            storage = storage_for(storage_alias)
            url = storage.url(name)
            srcset, sources = _srcsets(storage, renditions, FORMATS.get(mime_type), url, width)
            found[key] = ImageData(
                key, url, width, height, alt, color, ratio, Status.READY, srcset, sources
            )
        else:
            status = Status.PENDING if pending else Status.EMPTY
            found[key] = ImageData(key, "", None, None, alt, latest_color or "", ratio, status)
    return found


def _srcsets(
    storage: Any, renditions: Any, own_format: str | None, url: str, width: int
) -> tuple[str, tuple[tuple[str, str], ...]]:
    """The ``srcset`` in the image's own format and the ``<source>`` ones, from its renditions.

    Entries that do not have the documented shape are skipped rather than
    trusted: a page must render whatever a JSON column holds.
    """
    by_format: dict[str, dict[int, str]] = {}
    for rendition in renditions if isinstance(renditions, list) else ():
        if not isinstance(rendition, dict):
            continue
        kind, size, name = rendition.get("format"), rendition.get("width"), rendition.get("name")
        if (
            kind in _MIME_TYPES
            and isinstance(size, int)
            and not isinstance(size, bool)
            and size > 0
            and isinstance(name, str)
            and name
        ):
            by_format.setdefault(kind, {})[size] = storage.url(name)
    if not by_format:
        return "", ()
    own = by_format.get(own_format or "", {})
    own.setdefault(width, url)
    sources = tuple(
        (_MIME_TYPES[kind], _srcset(by_format[kind]))
        for kind in SOURCE_FORMATS
        if kind in by_format and kind != own_format
    )
    return _srcset(own), sources


def _srcset(urls: dict[int, str]) -> str:
    # A comma ends a candidate in srcset, so one inside a URL is escaped.
    return ", ".join(f"{urls[width].replace(',', '%2C')} {width}w" for width in sorted(urls))


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
    """Make every process read what the pages show from the database on next use.

    The signal receivers call this after each commit that may change what a
    key shows. Call it yourself after changing rows with ``QuerySet.update()``
    or ``bulk_create()``, which send no signals. ``keys`` name what changed;
    every cached batch is refreshed, since one generation covers them all.
    """
    if not any(_is_valid(key) for key in keys):
        return
    try:
        caches[conf.cache_alias()].set_many({_GENERATION: secrets.randbits(63)}, None)
    finally:
        value = secrets.randbits(63)
        if not ChangeToken.objects.filter(pk=1).update(value=value):
            ChangeToken.objects.get_or_create(pk=1, defaults={"value": value})


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
    they need, every other key the page will need, so a page costs one cache
    round trip however many images it shows. With a per-process cache it also
    reads the :class:`ChangeToken` once for the whole render.
    """

    __slots__ = ("_found", "_token", "planned", "replayed")

    def __init__(self) -> None:
        self._found: dict[str, ImageData] = {}
        self._token = _Token()
        #: For the template tags: the templates whose keys this render has planned.
        self.planned: dict[Any, Any] = {}
        #: For the template tags: the loops whose keys this render has gathered.
        self.replayed: set[Any] = set()

    def known(self, key: str) -> ImageData | None:
        """The data of ``key`` if this render has resolved it, else ``None``."""
        return self._found.get(key)

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
            self.fetch([key, *batch])
            data = self._found[key]
        return data

    def fetch(self, keys: Iterable[str]) -> None:
        """Resolve, in one batch, those of ``keys`` that this render has not resolved yet."""
        found = self._found
        new = [key for key in keys if key not in found]
        if new:
            found.update(_resolve(new, self._token))

"""How many renditions steps run at once: ``RENDITION_CONCURRENCY`` slots in the cache.

Renditions are CPU-bound and share the workers with the jobs' polls and
ingests; a burst of bound images would otherwise take every worker process
for minutes and delay the polls. A step takes one of the slots with
``cache.add`` (which only one caller wins) in ``CACHE_ALIAS``, for the task's
hard time limit, so the slot of a killed worker frees itself. With a cache
every process shares (Redis, Memcached) the cap holds across all workers;
with ``LocMemCache`` it holds per process, and ``DummyCache`` caps nothing
(docs/renditions.rst).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager

from django.core.cache import caches

from .. import conf

#: The cache key of slot ``n``, versioned so that a change of meaning never reads old slots.
SLOT_KEY = "neuraldraft:rendition-slot:v1:{}"

#: Seconds: a slot held this close to its expiry is left to expire, not deleted,
#: since the cache may already have let another step take it.
EXPIRY_MARGIN = 1.0


@contextmanager
def slot(timeout: float) -> Iterator[bool]:
    """Hold a free slot for up to ``timeout`` seconds; yields whether one was free.

    The slot is given back on leaving, unless it may have expired and been
    taken by another step. The cache API cannot delete a key only if it
    still holds a value, so two things are checked instead: the time held
    (an expiry cannot have come yet) and the holder (the cache did not evict
    it early for another step to take).
    """
    cache = caches[conf.cache_alias()]
    holder = secrets.token_hex(8)
    taken_at = time.monotonic()
    key = next(
        (
            SLOT_KEY.format(n)
            for n in range(conf.rendition_concurrency())
            if cache.add(SLOT_KEY.format(n), holder, timeout=timeout)
        ),
        None,
    )
    try:
        yield key is not None
    finally:
        held = time.monotonic() - taken_at
        if key is not None and held < timeout - EXPIRY_MARGIN and cache.get(key) == holder:
            cache.delete(key)

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
from collections.abc import Iterator
from contextlib import contextmanager

from django.core.cache import caches

from .. import conf

#: The cache key of slot ``n``, versioned so that a change of meaning never reads old slots.
SLOT_KEY = "neuraldraft:rendition-slot:v1:{}"


@contextmanager
def slot(timeout: float) -> Iterator[bool]:
    """Hold a free slot for up to ``timeout`` seconds; yields whether one was free.

    The slot is given back on leaving, unless it expired meanwhile and
    another step took it.
    """
    cache = caches[conf.cache_alias()]
    holder = secrets.token_hex(8)
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
        if key is not None and cache.get(key) == holder:
            cache.delete(key)

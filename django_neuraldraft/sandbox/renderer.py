"""Render generated images in the background while their jobs run, as the real service does.

By the time Neural Draft reports a job completed, its image exists; the CDN
fetch only serves bytes. Rendering here, between submit and completion, keeps
that order, and keeps render time out of the download that follows a poll.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

from django_neuraldraft.sandbox.images import render_image

RenderArgs = tuple[str, "str | None", str, tuple[int, int], str]

_STOP = None


class Renderer(threading.Thread):
    """One daemon thread that renders queued images and hands the bytes to ``keep``."""

    def __init__(self, keep: Callable[[str, bytes], None], name: str) -> None:
        super().__init__(name=name, daemon=True)
        self._keep = keep
        self._queue: queue.SimpleQueue[tuple[str, RenderArgs] | None] = queue.SimpleQueue()

    def submit(self, path: str, args: RenderArgs) -> None:
        self._queue.put((path, args))

    def stop(self) -> None:
        self._queue.put(_STOP)

    def run(self) -> None:
        while (item := self._queue.get()) is not _STOP:
            path, args = item
            self._keep(path, render_image(*args))

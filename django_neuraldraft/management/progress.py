"""How a waiting command shows a job's progress: a live bar on a terminal, lines elsewhere."""

from __future__ import annotations

import shutil

from django.core.management.base import OutputWrapper

from ..services.watching import Update

_BAR_WIDTH = 24


class ProgressDisplay:
    """Writes :class:`~django_neuraldraft.services.watching.Update`\\s to ``stdout``.

    On a terminal one line is redrawn in place; when output goes to a file or
    a pipe (cron, CI logs) each change is a line of its own, so the log reads
    as a history instead of a screen of carriage returns.
    """

    def __init__(self, stdout: OutputWrapper, label: str) -> None:
        self.stdout = stdout
        self.label = label
        self.live = _isatty(stdout)
        self.drawn = 0

    def __call__(self, update: Update) -> None:
        if self.live:
            self._draw(update)
        else:
            text = f"{self.label}: {update.status} {update.progress:3d}%"
            self.stdout.write(f"{text} {update.message}".rstrip())

    def _draw(self, update: Update) -> None:
        filled = _BAR_WIDTH * update.progress // 100
        bar = "#" * filled + "-" * (_BAR_WIDTH - filled)
        line = f"{self.label} [{bar}] {update.progress:3d}% {update.message}".rstrip()
        line = line[: max(20, shutil.get_terminal_size().columns - 1)]
        self.stdout.write("\r" + line.ljust(self.drawn), ending="")
        self.stdout.flush()
        self.drawn = len(line)

    def finish(self) -> None:
        """End the live line, so what follows starts on a line of its own."""
        if self.live and self.drawn:
            self.stdout.write("")
            self.drawn = 0


def _isatty(stdout: OutputWrapper) -> bool:
    try:
        return bool(stdout.isatty())
    except (AttributeError, ValueError):
        return False

"""How a command shows progress: a bar redrawn in place on a terminal, lines elsewhere."""

from __future__ import annotations

import shutil

from django.core.management.base import OutputWrapper

from ..services.watching import Update

_BAR_WIDTH = 24


def bar(done: int, total: int) -> str:
    """``[######------------------]`` for ``done`` out of ``total``."""
    filled = _BAR_WIDTH * min(done, total) // max(1, total)
    return "[" + "#" * filled + "-" * (_BAR_WIDTH - filled) + "]"


class LiveLine:
    """One line of ``stdout`` redrawn in place, when ``stdout`` is a terminal (``live``).

    When output goes to a file or a pipe (cron, CI logs) callers write plain
    lines instead, so the log reads as a history rather than a screen of
    carriage returns.
    """

    def __init__(self, stdout: OutputWrapper) -> None:
        self.stdout = stdout
        self.live = _isatty(stdout)
        self.drawn = 0

    def draw(self, line: str) -> None:
        """Replace the line on screen with ``line``, cut to the terminal's width."""
        line = line.rstrip()[: max(20, shutil.get_terminal_size().columns - 1)]
        self.stdout.write("\r" + line.ljust(self.drawn), ending="")
        self.stdout.flush()
        self.drawn = len(line)

    def above(self, text: str) -> None:
        """Write ``text`` as a line of its own; the live line is cleared first."""
        if self.live and self.drawn:
            self.stdout.write("\r" + " " * self.drawn + "\r", ending="")
            self.drawn = 0
        self.stdout.write(text)

    def finish(self) -> None:
        """End the live line, so what follows starts on a line of its own."""
        if self.live and self.drawn:
            self.stdout.write("")
            self.drawn = 0


class ProgressDisplay:
    """Writes :class:`~django_neuraldraft.services.watching.Update`\\s of one job's progress."""

    def __init__(self, stdout: OutputWrapper, label: str) -> None:
        self.line = LiveLine(stdout)
        self.label = label

    def __call__(self, update: Update) -> None:
        if self.line.live:
            self.line.draw(
                f"{self.label} {bar(update.progress, 100)} {update.progress:3d}% {update.message}"
            )
        else:
            text = f"{self.label}: {update.status} {update.progress:3d}%"
            self.line.stdout.write(f"{text} {update.message}".rstrip())

    def finish(self) -> None:
        self.line.finish()


def _isatty(stdout: OutputWrapper) -> bool:
    try:
        return bool(stdout.isatty())
    except (AttributeError, ValueError):
        return False

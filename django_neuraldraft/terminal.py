"""Text from Neural Draft or the database made safe to print on a terminal.

A job's message, its error, a job id or an API error's detail come from the
network; a prompt may have been typed by anyone with the admin. Printed as
they are, an escape sequence among them can clear the screen, retitle the
window or forge a link, and a newline can forge a line of output. Commands
pass every such value through :func:`printable` before they format it.
"""

from __future__ import annotations


def printable(value: object, limit: int | None = None) -> str:
    """``value`` as one line of plain text: control characters (escape, newline,
    bidi overrides...) become spaces, runs of spaces one, and at most ``limit``
    characters are kept.
    """
    text = value if isinstance(value, str) else str(value)
    if limit is not None:
        text = text[: limit * 2]
    text = " ".join("".join(char if char.isprintable() else " " for char in text).split())
    return text if limit is None else text[:limit]

"""Number arguments of the command lines (``manage.py neuraldraft_*`` and the sandbox's).

Plain Python, so the Django-free sandbox can share it: one way to parse a
number, check its range and say what was expected.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TypeVar

Number = TypeVar("Number", int, float)


def number(
    convert: Callable[[str], Number], description: str, accept: Callable[[Number], bool]
) -> Callable[[str], Number]:
    """An argparse ``type`` that reads a number with ``convert`` and keeps it if ``accept``
    says so; otherwise the usage error reads "'<value>' is not <description>."
    """

    def parse(value: str) -> Number:
        try:
            parsed = convert(value)
        except ValueError:
            parsed = None
        if parsed is None or not accept(parsed):
            raise argparse.ArgumentTypeError(f"{value!r} is not {description}.")
        return parsed

    return parse

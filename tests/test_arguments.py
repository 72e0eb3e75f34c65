"""``arguments.number``: one way for every command line to read a number in a range."""

from __future__ import annotations

import argparse
import math

import pytest

from django_neuraldraft.arguments import number

seconds = number(float, "a positive number of seconds", lambda value: 0 < value < math.inf)


@pytest.mark.parametrize(("text", "expected"), [("2.5", 2.5), ("1e3", 1000.0)])
def test_a_number_in_range_is_returned(text, expected):
    assert seconds(text) == expected


@pytest.mark.parametrize("text", ["0", "-1", "inf", "nan", "soon", ""])
def test_anything_else_says_what_was_expected(text):
    with pytest.raises(argparse.ArgumentTypeError) as raised:
        seconds(text)

    assert str(raised.value) == f"{text!r} is not a positive number of seconds."

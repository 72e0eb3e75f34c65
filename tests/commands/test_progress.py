"""``management.progress``: the one live line both waiting and backfilling commands draw."""

from __future__ import annotations

from io import StringIO

from django.core.management.base import OutputWrapper

from django_neuraldraft.management.progress import LiveLine, bar


class TerminalIO(StringIO):
    def isatty(self) -> bool:
        return True


def test_bar():
    assert bar(0, 4) == "[" + "-" * 24 + "]"
    assert bar(1, 4) == "[" + "#" * 6 + "-" * 18 + "]"
    assert bar(9, 4) == bar(4, 4) == "[" + "#" * 24 + "]"
    assert bar(0, 0) == "[" + "-" * 24 + "]"


def test_a_shorter_line_covers_the_longer_one_and_a_note_goes_above():
    out = TerminalIO()
    line = LiveLine(OutputWrapper(out))
    first, second = "hero.background [---] 10% Composing the scene", "hero [#--] 40% Done"

    line.draw(first)
    line.draw(second + "  ")
    line.above("a warning")
    line.draw("next")
    line.finish()

    assert out.getvalue() == (
        f"\r{first}\r{second.ljust(len(first))}\r{' ' * len(second)}\ra warning\n\rnext\n"
    )


def test_off_a_terminal_it_is_not_live():
    assert not LiveLine(OutputWrapper(StringIO())).live

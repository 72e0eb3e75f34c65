"""CPU work in a reniced thread: the value and errors come back, the caller's priority stays."""

from __future__ import annotations

import _thread
import os
import sys
import threading
import time

import pytest

from django_neuraldraft.low_priority import NICENESS, call_at_low_priority


def own_priority() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def test_the_value_comes_back_from_another_thread():
    assert call_at_low_priority(threading.get_native_id) != threading.get_native_id()


def test_what_the_work_raises_is_raised_to_the_caller():
    def fail(message):
        raise OSError(message)

    with pytest.raises(OSError, match="No space left"):
        call_at_low_priority(fail, "No space left on the device.")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a nice value per thread")
def test_the_work_runs_nicer_than_the_caller_which_keeps_its_own_priority():
    before = own_priority()
    assert call_at_low_priority(own_priority) == min(19, before + NICENESS)
    assert own_priority() == before


def test_an_interrupted_caller_waits_for_the_work_to_stop_before_it_lets_go():
    stopped = []

    def interrupt_then_finish():
        _thread.interrupt_main()
        time.sleep(0.2)
        stopped.append(True)

    with pytest.raises(KeyboardInterrupt):
        call_at_low_priority(interrupt_then_finish)
    assert stopped == [True]

"""A Ctrl-C swallowed by a finalizer still stops the run at the next safe point."""

from __future__ import annotations

import os
import signal

import pytest

from munet.interrupts import catching_interrupts, raise_if_interrupted


class SwallowsInterrupts:
    def __del__(self) -> None:
        os.kill(os.getpid(), signal.SIGINT)  # lands here: Python prints it as "ignored"
        for _ in range(1000):  # bytecodes for the handler to run on
            pass


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_an_interrupt_swallowed_in_a_finalizer_is_raised_at_the_next_safe_point():
    before = signal.getsignal(signal.SIGINT)
    with catching_interrupts():
        obj = SwallowsInterrupts()
        del obj  # no exception escapes a finalizer
        with pytest.raises(KeyboardInterrupt):
            raise_if_interrupted()
    assert signal.getsignal(signal.SIGINT) is before
    raise_if_interrupted()  # the request ended with the context


def test_without_an_interrupt_the_safe_points_pass():
    with catching_interrupts():
        raise_if_interrupted()

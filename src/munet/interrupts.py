"""Ctrl-C that cannot be lost.

Python turns SIGINT into ``KeyboardInterrupt`` wherever the main thread happens to be; when
that is a finalizer (``__del__`` of a third-party object, e.g. a Ray object reference), the
exception is printed as "ignored" and the run goes on. Inside :func:`catching_interrupts` the
request is also remembered, and the long loops call :func:`raise_if_interrupted` at their safe
points, so a swallowed interrupt still stops the run there.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

_requested = False


def _on_sigint(signum: int, frame: FrameType | None) -> None:
    global _requested
    _requested = True
    raise KeyboardInterrupt


@contextmanager
def catching_interrupts() -> Iterator[None]:
    """Remember Ctrl-C while the body runs (main thread only; elsewhere a no-op)."""
    global _requested
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, _on_sigint)
    _requested = False
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        _requested = False


def raise_if_interrupted() -> None:
    """Raise ``KeyboardInterrupt`` if Ctrl-C came and was swallowed on its way."""
    if _requested:
        raise KeyboardInterrupt

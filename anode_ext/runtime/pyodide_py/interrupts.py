"""Interrupts from the host, raised only while a cell's code runs.

The host marks every SIGINT it writes (``bridge.take_interrupt``). Pyodide
reads and then clears its one-slot signal buffer, which the ~50 ms flush
signal shares, so a SIGINT written between the two is gone: the flush handler
checks the mark too. An interrupt that lands while a request is still being
set up, in Pyodide's own plumbing where a KeyboardInterrupt would end the
worker, is held and raised as the cell begins.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from . import bridge

_armed = False  # a cell's code is running
_held = False  # interrupted before it began


def take() -> None:
    """From a signal handler: raise the host's interrupt now, or hold it."""
    if not bridge.take_interrupt():
        return  # none, or already raised (the SIGINT after a flush took it)
    if _armed:
        raise KeyboardInterrupt
    hold()


def hold() -> None:
    """Raise as the cell begins (it has not yet)."""
    global _held
    _held = True


def reset() -> None:
    """A new execute request: whatever was held belonged to an earlier one."""
    global _held
    _held = False


@contextmanager
def armed() -> Iterator[None]:
    """The cell's own time: interrupts raise here."""
    global _armed, _held
    _armed = True
    try:
        if _held:
            _held = False
            raise KeyboardInterrupt
        yield
    finally:
        _armed = False


def is_armed() -> bool:
    return _armed


def _on_sigint(signum: int, frame: Any) -> None:
    take()


def install() -> None:
    signal.signal(signal.SIGINT, _on_sigint)

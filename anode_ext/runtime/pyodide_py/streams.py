"""stdout/stderr for cells: buffered in Python, flushed in batches.

Writes accumulate in one ordered buffer shared by both streams. It is sent to
the host when it grows past ``FLUSH_BYTES``, before any other output, before
blocking (sleep, input), at the end of a cell, and whenever the host raises
``FLUSH_SIGNAL`` (every ~50 ms while a cell runs) so that a busy cell's
output still streams.
"""

from __future__ import annotations

import io
import signal
import time
from collections.abc import Callable
from typing import Any

from . import bridge, interrupts

FLUSH_BYTES = 16 * 1024
FLUSH_SIGNAL = 40  # must match host.mjs
SLICE = 0.05

# Also run by the flush signal: comms.install sets it (delivers front ends' messages).
on_flush_signal: Callable[[], None] | None = None
_buffer: list[tuple[str, str]] = []
_size = 0


def flush_all() -> None:
    global _buffer, _size
    if not _buffer:
        return
    pending, _buffer, _size = _buffer, [], 0
    name, parts = pending[0][0], []
    for n, text in pending:
        if n != name:
            bridge.post({"type": "stream", "name": name, "text": "".join(parts)})
            name, parts = n, []
        parts.append(text)
    bridge.post({"type": "stream", "name": name, "text": "".join(parts)})


def _write(name: str, text: str) -> None:
    global _size
    _buffer.append((name, text))
    _size += len(text)
    if _size >= FLUSH_BYTES:
        flush_all()


class OutStream(io.TextIOBase):
    """A text stream like ipykernel's: no file descriptor, not a tty."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name

    @property
    def encoding(self) -> str:
        return "utf-8"

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        raise io.UnsupportedOperation("fileno")

    def write(self, s: str) -> int:
        if not isinstance(s, str):
            raise TypeError(f"write() argument must be str, not {type(s).__name__}")
        if s:
            _write(self.name, s)
        return len(s)

    def flush(self) -> None:
        flush_all()


def sleep(secs: float) -> None:
    """time.sleep that an interrupt can stop: waits in slices."""
    if secs < 0:
        raise ValueError("sleep length must be non-negative")
    flush_all()
    deadline = time.monotonic() + secs
    while (remaining := deadline - time.monotonic()) > 0:
        bridge.wait(min(remaining, SLICE))


def _on_flush_signal(signum: int, frame: Any) -> None:
    interrupts.take()  # a SIGINT may have been lost to this very signal
    flush_all()
    if on_flush_signal is not None:
        on_flush_signal()


def install() -> None:
    import sys

    sys.stdout = OutStream("stdout")
    sys.stderr = OutStream("stderr")
    time.sleep = sleep
    signal.signal(FLUSH_SIGNAL, _on_flush_signal)
    interrupts.install()

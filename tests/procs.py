"""Processes seen through /proc, for tests that check what runs and what is gone."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any


def alive(pid: int) -> bool:
    """Running (a zombie is gone for our purpose: it only waits to be reaped)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


def children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        out += [int(k) for k in (task / "children").read_text().split()]
    return out


def running(module: str) -> list[int]:
    """Processes whose command line has ``module`` (``python -m module``) as an argument."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmd = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if module.encode() in cmd:
                found.append(int(proc.name))
    return found


def wait_until(check: Any, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
    return value


class LogSince:
    """A log file from now on. The pool services' logs outlive a test, and a
    pid in an earlier line may be this test's process again (pids are reused)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.start = path.stat().st_size if path.exists() else 0

    def text(self) -> str:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return ""
        if len(data) < self.start:  # started afresh (past its size limit)
            return data.decode(errors="replace")
        return data[self.start :].decode(errors="replace")

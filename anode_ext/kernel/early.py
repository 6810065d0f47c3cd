"""Boot Pyodide while the kernel process is still importing.

Importing ipykernel and setting up the kernel takes seconds; so does
Pyodide's boot. ``__main__`` calls ``launch()`` first thing, importing only
the light ``runtime.launch``, so that the two overlap. The kernel's first
runtime takes that launch over when it was made with the options the kernel
ends up configured with (``PyodideHost.adopt``).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from ..runtime.launch import BootOptions, Launch, plan, pool_setting

_launch: Launch | None = None


def launch() -> None:
    """Take a warmed runtime from the pool (``runtime.pool``, when
    ANODE_POOL=1; starting the pool if there is none), else spawn the Node
    host, with the kernel's default options. Never fails the kernel: if this
    cannot launch, the kernel's own start says why."""
    global _launch
    with contextlib.suppress(Exception):
        options = BootOptions.resolved(Path.cwd())
        started = None
        if pool_setting():
            from ..runtime import pool  # not light: imported only when on

            started = pool.take(options)
        if started is None:
            started = plan(options)
            started.spawn()
        _launch = started


def take() -> Launch | None:
    """The launch, once (``PyodideHost.adopt`` discards one that does not fit)."""
    global _launch
    out, _launch = _launch, None
    return out

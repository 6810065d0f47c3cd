"""The Pyodide runtime: a sandboxed Node.js + Pyodide host and its driver.

The names below are imported lazily: ``runtime.launch`` must stay importable
without asyncio and the rest (see ``kernel.early``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .host import PyodideHost
    from .pip import PipHandler, PipRefused, PipRequest, default_pip_handler
    from .protocol import ErrorInfo, ExecuteReply, HostDied, HostInfo

_WHERE = {
    "PyodideHost": "host",
    "PipHandler": "pip",
    "PipRefused": "pip",
    "PipRequest": "pip",
    "default_pip_handler": "pip",
    "ErrorInfo": "protocol",
    "ExecuteReply": "protocol",
    "HostDied": "protocol",
    "HostInfo": "protocol",
}

__all__ = [
    "ErrorInfo",
    "ExecuteReply",
    "HostDied",
    "HostInfo",
    "PipHandler",
    "PipRefused",
    "PipRequest",
    "PyodideHost",
    "default_pip_handler",
]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(name)
    return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)

"""The Pyodide runtime: a sandboxed Node.js + Pyodide host and its driver."""

from .host import PyodideHost
from .pip import PipHandler, PipRefused, PipRequest, default_pip_handler
from .protocol import ErrorInfo, ExecuteReply, HostDied, HostInfo

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

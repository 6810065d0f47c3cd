"""What PyodideHost returns and raises."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

# on_output receives, in order:
#   {"kind": "execute_input", "execution_count": n}          (not for silent runs)
#   {"kind": "output", "output": <nbformat v4 output>, "transient": {...}}
#   {"kind": "display_update", "display_id": ..., "data": {...}, "metadata": {...}}
#   {"kind": "clear_output", "wait": bool}
#   {"kind": "comm", "event": {"type": "comm_open" | "comm_msg" | "comm_close", "comm_id",
#    "data", "metadata", "buffers" (base64), ("target_name", "target_module")}}
OutputCallback = Callable[[dict[str, Any]], "Awaitable[None] | None"]
# on_input(prompt, password) -> the line typed
InputCallback = Callable[[str, bool], Awaitable[str]]


class HostDied(RuntimeError):
    """The Node process ended (or never booted); ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class HostInfo:
    python_version: str
    ipython_version: str
    implementation: str
    pyodide_version: str
    node_version: str
    boot_seconds: float  # spawn to ready, measured by the caller's side
    from_snapshot: bool
    snapshot: str  # "loaded", "created", "disabled", or what went wrong
    # V8's code for pyodide.asm.js: "accepted" (from the snapshot file),
    # "created" (into it), "rejected" (another Node or flags), "none",
    # "unsupported" (a Node without vm's default loader)
    code_cache: str
    network_isolated: bool  # inside a network namespace with no interfaces
    workdir_mount: str  # where the workdir appears inside the sandbox
    pid: int


@dataclass(frozen=True)
class ErrorInfo:
    ename: str
    evalue: str
    traceback: list[str]


@dataclass(frozen=True)
class ExecuteReply:
    status: str  # "ok" | "error" | "aborted"
    execution_count: int
    user_expressions: dict[str, Any] = field(default_factory=dict)
    payload: list[dict[str, Any]] = field(default_factory=list)
    error: ErrorInfo | None = None

    @classmethod
    def from_content(cls, content: dict[str, Any]) -> ExecuteReply:
        error = None
        if content.get("status") == "error":
            error = ErrorInfo(
                str(content.get("ename", "")),
                str(content.get("evalue", "")),
                list(content.get("traceback", [])),
            )
        return cls(
            status=str(content.get("status", "error")),
            execution_count=int(content.get("execution_count", 0)),
            user_expressions=dict(content.get("user_expressions") or {}),
            payload=list(content.get("payload") or []),
            error=error,
        )

    def to_content(self) -> dict[str, Any]:
        """The content of an ipykernel ``execute_reply``."""
        content: dict[str, Any] = {
            "status": self.status,
            "execution_count": self.execution_count,
            "user_expressions": self.user_expressions,
            "payload": self.payload,
        }
        if self.error is not None:
            content.update(
                ename=self.error.ename, evalue=self.error.evalue, traceback=self.error.traceback
            )
        return content

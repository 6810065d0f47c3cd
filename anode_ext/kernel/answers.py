"""What the kernel answers without the queue.

Who it is (`kernel_info`), introspection (answered by IPython inside
Pyodide), history (read from the log), and clear refusals for the two
ipykernel features it does not have: the debugger (cells run in Pyodide, out
of debugpy's reach) and subshells (one runtime works the log's queue in
order, so a subshell could not run anything alongside).
"""

from __future__ import annotations

import json
from typing import Any

from .. import __version__
from ..log.local import LogClient
from ..runtime import assets
from ..runtime.host import PyodideHost
from . import messages
from .ipykernel_internals import KERNEL_PROTOCOL_VERSION, InternalsKernel

NO_DEBUGGER = "anode-pyodide has no debugger: cells run in Pyodide, out of debugpy's reach"
NO_SUBSHELLS = (
    "anode-pyodide has no subshells: its runtime runs the notebook's queue one cell at a time"
)


def _python_version() -> str:
    try:
        lock = json.loads((assets.PYODIDE_DIR / "pyodide-lock.json").read_text())
        return str(lock["info"]["python"])
    except (OSError, KeyError, ValueError):
        return "3"


_PYTHON_VERSION = _python_version()  # once: the lock file is 120 KB of JSON


class Answers(InternalsKernel):
    """The kernel's identity and the requests it answers outside the log's
    queue. The subclass provides `client` (the log) and `_runtime()`."""

    implementation = "anode-pyodide"
    implementation_version = __version__
    language = "python"
    banner = (
        f"Python {_PYTHON_VERSION} in Pyodide (Anode {__version__}): sandboxed, "
        "and every execution recorded in the notebook's log"
    )
    language_info = {
        "name": "python",
        "version": _PYTHON_VERSION,
        "mimetype": "text/x-python",
        "codemirror_mode": {"name": "ipython", "version": 3},
        "pygments_lexer": "ipython3",
        "nbconvert_exporter": "python",
        "file_extension": ".py",
    }
    help_links = [
        {"text": "Python Reference", "url": "https://docs.python.org/3.13/"},
        {"text": "IPython Reference", "url": "https://ipython.readthedocs.io/en/stable/"},
        {"text": "Pyodide", "url": "https://pyodide.org/en/stable/"},
    ]

    client: LogClient

    async def _runtime(self) -> PyodideHost:
        """The booted host (the subclass waits for the boot)."""
        raise NotImplementedError

    @property
    def kernel_info(self) -> dict[str, Any]:
        # ipykernel's lists "debugger" whenever debugpy is importable (and
        # imports it to find out) and "kernel subshells": front ends would
        # offer both. This kernel has neither.
        return {
            "protocol_version": KERNEL_PROTOCOL_VERSION,
            "implementation": self.implementation,
            "implementation_version": self.implementation_version,
            "language_info": self.language_info,
            "banner": self.banner,
            "help_links": self.help_links,
            "supported_features": [],
        }

    async def do_debug_request(self, msg: dict[str, Any]) -> dict[str, Any]:
        """A failed DAP response (the base class raises, and the client never hears back)."""
        return {
            "type": "response",
            "seq": 0,
            "request_seq": msg.get("seq", 0),
            "success": False,
            "command": msg.get("command", ""),
            "message": NO_DEBUGGER,
        }

    async def create_subshell_request(self, socket: Any, ident: Any, parent: Any) -> None:
        """An error reply: a subshell's requests would run on another thread,
        outside the loop the log and the runtime live on."""
        if not self.session:
            return
        content = {
            "status": "error",
            "ename": "NotImplementedError",
            "evalue": NO_SUBSHELLS,
            "traceback": [],
        }
        self.session.send(socket, "create_subshell_reply", content, parent, ident)

    # -- introspection, answered by IPython inside Pyodide ----------------------
    async def do_complete(self, code: str, cursor_pos: int | None) -> dict[str, Any]:
        host = await self._runtime()
        return await host.complete(code, len(code) if cursor_pos is None else cursor_pos)

    async def do_inspect(
        self, code: str, cursor_pos: int | None, detail_level: int = 0, omit_sections: Any = ()
    ) -> dict[str, Any]:
        host = await self._runtime()
        pos = len(code) if cursor_pos is None else cursor_pos
        return await host.inspect(code, pos, detail_level)

    async def do_is_complete(self, code: str) -> dict[str, Any]:
        host = await self._runtime()
        return await host.is_complete(code)

    async def do_history(
        self,
        hist_access_type: str,
        output: bool,
        raw: bool,
        session: int | None = None,
        start: int | None = None,
        stop: int | None = None,
        n: int | None = None,
        pattern: str | None = None,
        unique: bool = False,
    ) -> dict[str, Any]:
        request = {
            "hist_access_type": hist_access_type,
            "session": session,
            "start": start,
            "stop": stop,
            "n": n,
            "pattern": pattern,
            "unique": unique,
        }
        state = self.client.state
        found = messages.history(messages.history_entries(state), request)
        if output:
            found = messages.with_outputs(state, found)
        return {"status": "ok", "history": found}

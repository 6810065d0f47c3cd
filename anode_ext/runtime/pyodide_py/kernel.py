"""Request handlers called by worker.mjs: execute, complete, inspect, ...

Each takes the request as a JSON string and returns the reply content as a
JSON string, shaped like ipykernel's replies.
"""

from __future__ import annotations

import asyncio
import builtins
import getpass
import json
import os
import random
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from IPython.core.async_helpers import _pseudo_sync_runner
from IPython.core.completer import provisionalcompleter, rectify_completions
from IPython.core.error import StdinNotImplementedError
from IPython.utils.tokenutil import token_at_cursor

from . import bridge, capture, comms, interrupts, shell, streams
from .magics import PipMagics

NO_STDIN = "raw_input was called, but this frontend does not support input requests."

_task: asyncio.Task[Any] | None = None


def prepare() -> None:
    """Cold boot, before the memory snapshot: import and warm up IPython (and
    ipywidgets: a first `import ipywidgets` would compile ~0.5 MB of source)."""
    comms.install()
    sh = shell.make_shell()
    sh.register_magics(PipMagics)
    with provisionalcompleter():
        list(sh.Completer.completions("import o", 8))
        list(sh.Completer.completions("print(len", 9))
    sh.object_inspect_mime("print")
    sh.input_transformer_manager.check_complete("for i in x:")
    # Import in the snapshot what the first cell, error or %magic would:
    # after a restore, an import reads and compiles its source again (Pyodide's
    # standard library has no .pyc). So also standard modules notebooks often
    # import and ipykernel's process has loaded (statistics: ~50 ms a runtime).
    import _strptime  # noqa: F401  (datetime.strptime)
    import bdb  # noqa: F401  (run_cell, on every cell)
    import calendar  # noqa: F401
    import csv  # noqa: F401
    import gzip  # noqa: F401
    import secrets  # noqa: F401
    import statistics  # noqa: F401
    import zoneinfo  # noqa: F401

    from IPython.core.logger import Logger  # noqa: F401  (the shell's logger)
    from IPython.core.magics import namespace  # noqa: F401  (obj?)

    warm_up()
    sh.run_line_magic("time", "pass")
    import ipywidgets  # noqa: F401  (registers its comm targets with ours)

    capture.install()


_WARM_UP = """
def _fib(n):
    return n if n < 2 else _fib(n - 1) + _fib(n - 2)
_x = [_fib(18), sorted({str(i): i for i in range(2000)}.items())[-1], f"{3.5:.2f}"]
"""


def warm_up() -> None:
    """Run the interpreter's common paths once, without touching the user's
    namespace: after a snapshot restore, V8 compiles (and optimizes) the
    WebAssembly it runs on first use, which would otherwise land on the first
    cell."""
    sh = shell.current()
    code = sh.transform_cell(_WARM_UP)
    exec(sh.compile(code, "<warm-up>", "exec"), {})
    sh.display_formatter.format([1, "a", 2.5])
    try:
        raise ValueError("warm-up")
    except ValueError:
        sh.InteractiveTB.structured_traceback(*sys.exc_info())
    sh.input_transformer_manager.check_complete("x = 1")


_WARM_UP_REQUEST = json.dumps(
    {"code": "len(sorted(str(i) for i in range(500)))", "silent": True, "store_history": False}
)


def warm_up_execute() -> None:
    """Every boot, before the first request: one silent execute through the
    whole request path (run_cell, the reply), which a silent request leaves
    no trace of: no output, no history, no execution count, no names."""
    execute(_WARM_UP_REQUEST)


def attach(js_bridge: Any, options_json: str) -> str:
    """Every boot (cold or restored): connect to the host, refresh what must
    not be shared between snapshot restores; returns the runtime's info."""
    options = json.loads(options_json)
    bridge.attach(js_bridge)
    comms.install()
    capture.install()
    random.seed()  # a restored snapshot would otherwise repeat the sequence
    tempfile._name_sequence = None  # type: ignore[attr-defined]
    os.chdir(options["cwd"])
    if "" not in sys.path:
        sys.path.insert(0, "")
    streams.install()
    import IPython
    import pyodide

    return json.dumps(
        {
            "python_version": sys.version.split()[0],
            "ipython_version": IPython.__version__,
            "pyodide_version": pyodide.__version__,
            "implementation": f"{sys.implementation.name} (Pyodide, {sys.platform})",
            "platform": sys.platform,
            "cwd": os.getcwd(),
        }
    )


def _input(prompt: object = "") -> str:
    streams.flush_all()
    return bridge.request_input(str(prompt), False)


def _getpass(prompt: str = "Password: ", stream: Any = None) -> str:
    streams.flush_all()
    return bridge.request_input(prompt, True)


def _no_input(prompt: object = "") -> str:
    raise StdinNotImplementedError(NO_STDIN)


def _no_getpass(prompt: str = "Password: ", stream: Any = None) -> str:
    raise StdinNotImplementedError(NO_STDIN)


@contextmanager
def _stdin(allowed: bool) -> Iterator[None]:
    saved: tuple[Callable[..., str], Callable[..., str]] = (builtins.input, getpass.getpass)
    builtins.input = _input if allowed else _no_input
    getpass.getpass = _getpass if allowed else _no_getpass
    try:
        yield
    finally:
        builtins.input, getpass.getpass = saved


class _Cell:
    """A cell transformed, and whether it needs the event loop (a top-level
    await). Done before the cell's time begins: an interrupt meanwhile is
    held and raised as it begins."""

    def __init__(self, sh: shell.AnodeShell, code: str) -> None:
        self.code = code
        try:
            self.transformed: str = sh.transform_cell(code)
            self.preprocessing_exc: Any = None
        except Exception:
            self.transformed, self.preprocessing_exc = code, sys.exc_info()
        # Without either word no top-level await is possible; asking IPython
        # compiles the cell once more (~0.6 ms a cell in wasm).
        self.needs_loop = (
            "await" in self.transformed or "async" in self.transformed
        ) and sh.should_run_async(
            code, transformed_cell=self.transformed, preprocessing_exc_tuple=self.preprocessing_exc
        )

    def start(self, sh: shell.AnodeShell, silent: bool, store_history: bool) -> Any:
        """IPython's run_cell_async, with the cell transformed once, not twice."""
        return sh.run_cell_async(
            self.code,
            store_history=store_history,
            silent=silent,
            transformed_cell=self.transformed,
            preprocessing_exc_tuple=self.preprocessing_exc,
        )


@contextmanager
def _running(sh: shell.AnodeShell, silent: bool) -> Iterator[list[Any]]:
    """What run_cell does around the cell: what it prints is kept in its
    history too, an exception becomes an error reply (not a dead runtime),
    post_execute and post_run_cell follow. Yields a box for the result."""
    box: list[Any] = [None]
    try:
        with sh._tee(channel="stdout"), sh._tee(channel="stderr"):
            try:
                yield box
            except Exception:
                sh.showtraceback(running_compiled_code=True)
    finally:
        sh.events.trigger("post_execute")
        if not silent:
            sh.events.trigger("post_run_cell", box[0])


def execute(request_json: str) -> Any:
    """The reply as JSON; for a cell with a top-level await, an awaitable of
    it. A plain cell runs here and now: through the event loop it took a
    Task and two rounds of Node's event loop, ~3 ms a cell in wasm."""
    req = json.loads(request_json)
    silent = bool(req.get("silent", False))
    store_history = bool(req.get("store_history", True)) and not silent
    sh = shell.current()
    sh.last_error = None
    sh.error_in_displayhook = False
    sh.interrupting = False
    if not silent:
        bridge.post({"type": "execute_input", "execution_count": sh.execution_count})
    cell = _Cell(sh, req["code"])
    run = _execute(req, sh, cell, silent, store_history)
    return run if cell.needs_loop else _pseudo_sync_runner(run)


async def _execute(
    req: dict[str, Any], sh: shell.AnodeShell, cell: _Cell, silent: bool, store_history: bool
) -> str:
    """Awaits nothing unless the cell needs the loop: then it runs as a Task,
    which an interrupt cancels while the cell awaits."""
    global _task
    if cell.needs_loop:
        _task = asyncio.current_task()
    result: Any = None
    interrupted = False
    try:
        with _stdin(bool(req.get("allow_stdin", False))), interrupts.armed():
            with _running(sh, silent) as box:
                started = cell.start(sh, silent, store_history)
                result = await started if cell.needs_loop else _pseudo_sync_runner(started)
                box[0] = result
    except (KeyboardInterrupt, asyncio.CancelledError):
        # Interrupted outside the user's code (IPython catches it inside).
        interrupted = True
        sh.interrupting = True
        sh.showtraceback()
    finally:
        _task = None
        sh.interrupting = False
        streams.flush_all()
    return _reply(req, sh, result, interrupted)


def _reply(req: dict[str, Any], sh: shell.AnodeShell, result: Any, interrupted: bool) -> str:
    reply: dict[str, Any] = {"execution_count": sh.execution_count - 1}
    error = sh.last_error
    ok = not interrupted and result is not None and result.success and not sh.error_in_displayhook
    if ok:
        reply["status"] = "ok"
        reply["user_expressions"] = sh.user_expressions(req.get("user_expressions") or {})
    else:
        err = None if result is None else (result.error_before_exec or result.error_in_exec)
        reply["status"] = "error"
        reply["ename"] = error["ename"] if error else type(err).__name__
        reply["evalue"] = error["evalue"] if error else str(err)
        reply["traceback"] = error["traceback"] if error else []
        reply["user_expressions"] = {}
    assert sh.payload_manager is not None
    reply["payload"] = sh.payload_manager.read_payload()
    sh.payload_manager.clear_payload()
    streams.flush_all()
    return bridge.dumps(reply)


def comms_deliver() -> None:
    """The host put front ends' comm events in the mailbox (worker.mjs, any time
    the worker is not running Python: between requests, or while an async cell
    awaits)."""
    comms.drain()


def reset_interrupt() -> None:
    """Before each execute request starts (called by the worker)."""
    interrupts.reset()


def interrupt_async() -> None:
    """The host interrupted while Python awaits: cancel the cell's task, or
    hold the interrupt if the cell has not begun yet."""
    sh = shell.current()
    if _task is not None and not _task.done():
        sh.interrupting = True
        _task.cancel()
    else:
        interrupts.hold()


def complete(request_json: str) -> str:
    req = json.loads(request_json)
    code: str = req["code"]
    cursor_pos = req.get("cursor_pos")
    if cursor_pos is None:
        cursor_pos = len(code)
    sh = shell.current()
    with provisionalcompleter():
        completions = list(rectify_completions(code, sh.Completer.completions(code, cursor_pos)))
    if completions:
        start, end = completions[0].start, completions[0].end
    else:
        start = end = cursor_pos
    types = [
        {
            "start": c.start,
            "end": c.end,
            "text": c.text,
            "type": c.type,
            "signature": c.signature,
        }
        for c in completions
    ]
    return bridge.dumps(
        {
            "status": "ok",
            "matches": [c.text for c in completions],
            "cursor_start": start,
            "cursor_end": end,
            "metadata": {"_jupyter_types_experimental": types} if types else {},
        }
    )


def inspect(request_json: str) -> str:
    req = json.loads(request_json)
    code: str = req["code"]
    cursor_pos = req.get("cursor_pos")
    if cursor_pos is None:
        cursor_pos = len(code)
    name = token_at_cursor(code, cursor_pos)
    reply: dict[str, Any] = {"status": "ok", "data": {}, "metadata": {}, "found": False}
    sh = shell.current()
    try:
        bundle = sh.object_inspect_mime(name, detail_level=int(req.get("detail_level", 0)))
    except KeyError:
        return bridge.dumps(reply)
    bundle.pop("text/html", None)
    reply["data"] = bundle
    reply["found"] = True
    return bridge.dumps(reply)


def is_complete(request_json: str) -> str:
    req = json.loads(request_json)
    status, indent = shell.current().input_transformer_manager.check_complete(req["code"])
    reply: dict[str, Any] = {"status": status}
    if status == "incomplete":
        reply["indent"] = " " * (indent or 0)
    return bridge.dumps(reply)

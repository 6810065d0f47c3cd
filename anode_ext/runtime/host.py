"""PyodideHost: run code in a sandboxed Pyodide under Node, Jupyter-style.

One Node process per host (``js/host.mjs``, driven by ``process.NodeProcess``),
spoken to in JSON lines over its stdin/stdout; see host.mjs for the message
types. This module holds what is Jupyter about it: boots and snapshots,
execute with its outputs, input and ``%pip`` round trips, restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import shutil
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from . import assets, pool
from .launch import DEFAULT_JS_HEAP_MB, MOUNT_POINT, BootOptions, Launch, PipDir, plan
from .node import node_version
from .pip import PipHandler, PipRefused, PipRequest, default_pip_handler
from .process import NodeProcess, Request
from .protocol import ExecuteReply, HostDied, HostInfo, InputCallback, OutputCallback

log = logging.getLogger(__name__)

DEFAULT_MEMORY_LIMIT_MB = 6144
COMM_EVENTS = frozenset(("comm_open", "comm_msg", "comm_close"))


async def _maybe_await(value: Awaitable[None] | None) -> None:
    if inspect.isawaitable(value):
        await value


class PyodideHost:
    """A sandboxed Pyodide runtime for one notebook directory (``workdir``),
    which appears inside the sandbox as ``/home/pyodide/work``, the cwd."""

    def __init__(
        self,
        workdir: Path,
        *,
        node: str | None = None,
        snapshot_dir: Path | None = None,
        network: bool = False,
        memory_limit_mb: int = DEFAULT_MEMORY_LIMIT_MB,
        js_heap_mb: int = DEFAULT_JS_HEAP_MB,
        use_snapshot: bool = True,
        pip_handler: PipHandler | None = default_pip_handler,
        boot_timeout: float = 120.0,
        node_args: tuple[str, ...] = (),
        warm_pool: bool = False,
    ) -> None:
        base = BootOptions.resolved(workdir, node, snapshot_dir)
        self.workdir, self.node, self.cache_dir = base.workdir, base.node, base.cache_dir
        self.network = network
        self.memory_limit_mb = memory_limit_mb
        self.js_heap_mb = js_heap_mb
        self.use_snapshot = use_snapshot
        self.pip_handler = pip_handler
        self.boot_timeout = boot_timeout
        self.node_args = node_args
        # Take booted runtimes from the warm pool (``pool``), and start it.
        self.warm_pool = warm_pool
        self.info: HostInfo | None = None
        self._node: NodeProcess | None = None
        self._wheels: PipDir | None = None
        self._mount: PipDir | None = None  # a pooled runtime's: see ``pool``
        self._launch: Launch | None = None
        # What Python does outside any request: comm events made by a comm
        # callback ({"kind": "comm", "event": ...}) and deliveries done
        # ({"kind": "comms_taken", "through": seq}).
        self.on_background: Callable[[dict[str, Any]], None] | None = None

    # ------------------------------------------------------------ state ----

    @property
    def pid(self) -> int | None:
        """The Node process's id (also its process group)."""
        return self._node.pid if self._node else None

    @property
    def alive(self) -> bool:
        return self._node is not None and self._node.alive

    def _running(self) -> NodeProcess:
        if self._node is None:
            raise HostDied("host not started")
        return self._node

    # ---------------------------------------------------------- startup ----

    def options(self) -> BootOptions:
        return BootOptions(
            workdir=self.workdir,
            node=self.node,
            cache_dir=self.cache_dir,
            network=self.network,
            use_snapshot=self.use_snapshot,
            js_heap_mb=self.js_heap_mb,
            node_args=tuple(self.node_args),
        )

    def launch(self) -> None:
        """Spawn the Node process now, without an event loop; ``start()``
        then takes it over."""
        self.adopt(plan(self.options()))
        assert self._launch is not None
        self._launch.spawn()

    def adopt(self, launch: Launch) -> bool:
        """Take over a launch made elsewhere (the kernel's, made before its
        imports) if it was made with this host's options; else discard it."""
        if self._node is not None or self._launch is not None:
            launch.discard()
            raise RuntimeError("PyodideHost already started; use restart()")
        if launch.options != self.options() or (launch.handed and not self.warm_pool):
            launch.discard()
            return False
        self._launch = launch
        return True

    def _plan(self) -> Launch:
        """A runtime from the warm pool when there is one, else a boot of our own."""
        options = self.options()
        taken = pool.take(options) if self.warm_pool else None
        return taken if taken is not None else plan(options)

    async def start(self) -> HostInfo:
        """Boot: from the memory snapshot if there is a valid one, else cold
        (and then write the snapshot for next time). HostDied if it fails."""
        if self._node is not None:
            raise RuntimeError("PyodideHost already started; use restart()")
        launch, self._launch = self._launch, None
        if launch is None:
            launch = await asyncio.to_thread(self._plan)
        self._wheels = launch.pip
        node = self._node = NodeProcess(self.memory_limit_mb)
        node.on_unsolicited = self._unsolicited
        snap_path, snap_tmp, status = launch.snap_path, launch.snap_tmp, launch.status
        try:
            if launch.handed is not None:
                self._mount = launch.handed.mount
                await node.adopt_handed(launch.handed)
            elif launch.proc is None:
                try:
                    await node.spawn(launch.cmd, str(assets.JS_DIR), launch.pass_fds)
                finally:
                    launch.close_fds()
            else:
                await node.adopt(launch.proc)
            ready = await asyncio.wait_for(asyncio.shield(node.ready), self.boot_timeout)
        except BaseException as exc:
            await self.close()
            if snap_tmp is not None:
                snap_tmp.unlink(missing_ok=True)
            if isinstance(exc, asyncio.TimeoutError):
                raise HostDied(f"boot timed out after {self.boot_timeout:.0f}s") from None
            raise
        if ready.get("snapshot_fallback"):
            status = f"fallback to cold boot ({ready['snapshot_fallback']})"
            assets.discard_snapshot(snap_path)
        if ready.get("code_cache") == "rejected":
            # Another Node (or other V8 flags) than the one that wrote the
            # snapshot: every boot compiles pyodide.asm.js again (~0.4 s) until
            # the snapshot is rebuilt (remove it from the cache to force that).
            log.warning("host: V8 refused the snapshot's code cache (%s)", snap_path)
        if snap_tmp is not None:
            if ready.get("snapshot_bytes_written"):
                await asyncio.to_thread(assets.finalize_snapshot, snap_tmp, snap_path)
            else:
                snap_tmp.unlink(missing_ok=True)
        info = ready["info"]
        self.info = HostInfo(
            python_version=info["python_version"],
            ipython_version=info["ipython_version"],
            implementation=info["implementation"],
            pyodide_version=info["pyodide_version"],
            node_version=".".join(map(str, node_version(self.node))),
            boot_seconds=time.monotonic() - launch.t0,
            from_snapshot=ready["mode"] == "snapshot" and not ready.get("snapshot_fallback"),
            snapshot=status,
            code_cache=str(ready.get("code_cache", "none")),
            network_isolated=launch.isolate,
            workdir_mount=MOUNT_POINT,
            pid=node.pid or 0,
        )
        return self.info

    # -------------------------------------------------------------- API ----

    async def execute(
        self,
        code: str,
        *,
        silent: bool = False,
        store_history: bool = True,
        user_expressions: dict[str, str] | None = None,
        on_output: OutputCallback | None = None,
        on_input: InputCallback | None = None,
    ) -> ExecuteReply:
        """Run a cell. Outputs go to ``on_output`` as they happen; ``input()``
        calls ``on_input`` (without it, input() raises in the cell)."""
        node = self._running()
        req = node.request(
            "execute",
            code=code,
            silent=silent,
            store_history=store_history and not silent,
            user_expressions=user_expressions or {},
            allow_stdin=on_input is not None,
        )
        try:
            while True:
                msg = await req.next()
                kind = msg["type"]
                if kind == "reply":
                    return ExecuteReply.from_content(msg["content"])
                if kind == "event":
                    await self._emit(on_output, msg["event"])
                elif kind == "input_request" and on_input is not None:
                    prompt, password = str(msg.get("prompt", "")), bool(msg.get("password"))
                    work = self._input(on_input, prompt, password)
                    await self._answer(node, req, msg, "input_reply", work)
                elif kind == "pip_request":
                    await self._answer(node, req, msg, "pip_reply", self._pip(msg, on_output))
        finally:
            node.done(req)

    async def _emit(self, on_output: OutputCallback | None, ev: dict[str, Any]) -> None:
        if on_output is None:
            return
        kind = ev.get("type")
        if kind == "stream":
            out = {"output_type": "stream", "name": ev["name"], "text": ev["text"]}
            item: dict[str, Any] = {"kind": "output", "output": out, "transient": {}}
        elif kind == "output":
            transient = ev.get("transient") or {}
            item = {"kind": "output", "output": ev["output"], "transient": transient}
        elif kind == "display_update":
            item = {
                "kind": "display_update",
                "display_id": ev.get("display_id"),
                "data": ev.get("data") or {},
                "metadata": ev.get("metadata") or {},
            }
        elif kind == "clear_output":
            item = {"kind": "clear_output", "wait": bool(ev.get("wait"))}
        elif kind == "execute_input":
            item = {"kind": "execute_input", "execution_count": ev["execution_count"]}
        elif kind in COMM_EVENTS:
            item = {"kind": "comm", "event": ev}
        else:
            return
        await _maybe_await(on_output(item))

    def _unsolicited(self, msg: dict[str, Any]) -> None:
        if self.on_background is None:
            return
        if msg.get("type") == "comms_taken":
            self.on_background({"kind": "comms_taken", "through": int(msg["through"])})
        elif msg.get("type") == "event" and msg["event"].get("type") in COMM_EVENTS:
            self.on_background({"kind": "comm", "event": msg["event"]})
        # Anything else made outside a request (a callback's print) has no cell to go to.

    def deliver_comms(self, messages: list[dict[str, Any]]) -> None:
        """Hand Python front ends' comm events, in log order: each ``{seq, kind
        (comm_open | comm_msg | comm_close), comm_id, data, metadata, buffers
        (base64), target_name, target_module, msg_id}``. Python takes them
        between requests, or from a running cell; ``comms_taken`` says how far."""
        self._running().send({"type": "comms", "messages": messages})

    async def _answer(
        self,
        node: NodeProcess,
        req: Request,
        msg: dict[str, Any],
        kind: str,
        work: Awaitable[dict[str, Any]],
    ) -> None:
        """Answer a blocking request of the worker (input, pip), unless the
        cell is interrupted meanwhile."""
        seq = msg["seq"]
        task = asyncio.ensure_future(work)
        getter = asyncio.ensure_future(req.queue.get())
        try:
            done, _ = await asyncio.wait({task, getter}, return_when=asyncio.FIRST_COMPLETED)
            if getter in done:
                item = getter.result()
                if isinstance(item, HostDied):
                    raise item
                if item.get("type") != "stdin_cancelled":
                    log.warning("host: unexpected %s while waiting for %s", item.get("type"), kind)
                return
            try:
                reply = task.result()
            except Exception:
                log.exception("host: %s failed; interrupting the cell", kind)
                self.interrupt()
                return
            node.send({"type": kind, "seq": seq, **reply})
        finally:
            for t in (task, getter):
                t.cancel()

    async def _input(self, on_input: InputCallback, prompt: str, password: bool) -> dict[str, Any]:
        return {"value": str(await on_input(prompt, password))}

    async def _pip(self, msg: dict[str, Any], on_output: OutputCallback | None) -> dict[str, Any]:
        if self.pip_handler is None:
            return {"ok": False, "wheels": [], "error": "package installation is disabled here"}
        assert self._wheels is not None
        dest = self._wheels.path / f"req-{msg['seq']}"
        dest.mkdir(parents=True, exist_ok=True)

        async def emit(text: str) -> None:
            await self._emit(on_output, {"type": "stream", "name": "stdout", "text": text})

        version = ".".join((self.info.python_version if self.info else "3.13").split(".")[:2])
        try:
            args = [str(a) for a in msg["args"]]
            wheels = await self.pip_handler(PipRequest(args, dest, version, emit))
        except PipRefused as exc:
            return {"ok": False, "wheels": [], "error": str(exc)}
        except Exception as exc:
            log.exception("pip handler failed")
            return {"ok": False, "wheels": [], "error": f"pip failed: {exc}"}
        paths = []
        for wheel in wheels:
            path = Path(wheel).resolve()
            if path.parent != dest.resolve():  # the sandbox may only read dest
                path = Path(shutil.copy2(path, dest / path.name))
            paths.append(str(path))
        return {"ok": True, "wheels": paths, "error": ""}

    def interrupt(self) -> None:
        """KeyboardInterrupt in the running cell (if any), within ~50 ms;
        a no-op when idle or dead."""
        if self._node is not None and self._node.alive:
            with contextlib.suppress(HostDied):
                self._node.send({"type": "interrupt"})

    async def complete(self, code: str, cursor_pos: int) -> dict[str, Any]:
        """ipykernel's complete_reply content."""
        return await self._running().call("complete", code=code, cursor_pos=cursor_pos)

    async def inspect(self, code: str, cursor_pos: int, detail_level: int = 0) -> dict[str, Any]:
        """ipykernel's inspect_reply content."""
        return await self._running().call(
            "inspect", code=code, cursor_pos=cursor_pos, detail_level=detail_level
        )

    async def is_complete(self, code: str) -> dict[str, Any]:
        """ipykernel's is_complete_reply content."""
        return await self._running().call("is_complete", code=code)

    async def restart(self) -> HostInfo:
        """A fresh interpreter (a new process); works after a crash too."""
        await self.close()
        return await self.start()

    async def close(self) -> None:
        """Stop the Node process (politely, then by force); never leaves one."""
        node, self._node = self._node, None
        launch, self._launch = self._launch, None
        self.info = None
        if launch is not None:  # launched (or adopted), never started
            await asyncio.to_thread(launch.discard)
        if node is not None:
            await node.close()
        for owned in (self._wheels, self._mount):
            if owned is not None:
                owned.remove()
        self._wheels = self._mount = None

    async def __aenter__(self) -> PyodideHost:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

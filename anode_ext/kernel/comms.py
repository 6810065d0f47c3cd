"""The kernel's side of comms: ipywidgets over the Jupyter protocol, through the log.

Every comm event Python makes is in the notebook's log; the kernel publishes
them on iopub, whoever's request made them, so each of its clients sees the
notebook's widgets. A front end's comm message goes into the log for the
runtime session holding the comm, and is answered once that runtime handed it
to Python.
"""

from __future__ import annotations

import asyncio
import base64
import uuid
from typing import Any

import msgspec

from ..log import catalogue as ev
from ..log.errors import Refused
from ..log.local import LogClient, comm_events
from ..log.state import State
from ..runtime.agent import Agent
from ..runtime.host import PyodideHost
from ..runtime.run import wait_for
from . import messages
from .ipykernel_internals import InternalsKernel


def _new_id() -> str:
    return uuid.uuid4().hex


class Comms(InternalsKernel):
    """Comms for `AnodeKernel`, which provides `client` and `agent` and calls
    `_init_comms`, `_publish_comms` (before an execution's outputs) and
    `_follow_comms` (in the background)."""

    client: LogClient
    agent: Agent

    async def _runtime(self) -> PyodideHost:
        """The booted host (AnodeKernel waits for the boot)."""
        raise NotImplementedError

    def _init_comms(self) -> None:
        # Every comm event Python makes is published on iopub, in log order, up
        # to `_comm_seen`; with its execute request as parent when one of ours
        # ran it, else the front end's comm message it answers.
        self._comm_seen = 0
        self._parents: dict[str, Any] = {}
        self._comm_parent: Any = {}
        # Front ends' comm messages go to the log one at a time, in arrival order:
        # ipykernel (7.4+) dispatches them concurrently while a handler runs.
        self._comm_lock = asyncio.Lock()
        self._dispatched = ""  # msg_id of the shell request ipykernel last dispatched itself
        for msg_type in ("comm_open", "comm_msg", "comm_close"):
            self.shell_handlers[msg_type] = self._comm_request

    async def _follow_comms(self) -> None:
        """Publish the comm events Python makes, whoever's request made them: every
        client of the kernel sees the widgets of the notebook's runtime."""
        try:
            while True:
                head = self.client.state.t.head
                self._publish_comms(head)
                await self.client.wait(head, 5.0)
        except Exception as err:  # the log's client closed at shutdown
            self.log.debug("comm follower stopped: %s", err)

    def _publish_comms(self, upto: int) -> None:
        """Python's comm events after `_comm_seen` up to `upto`, on iopub (synchronous:
        the follower and a running execute never interleave)."""
        if self.session is None:
            return
        envs = comm_events(self.client, self._comm_seen, upto)
        self._comm_seen = max(self._comm_seen, upto)
        for env in envs:
            e: ev.CommEvent = env.args  # type: ignore[assignment]
            if e.origin != "runtime":
                continue
            msg_type, content = messages.comm_message(e)
            parent = self._parents.get(e.execution_id or "") or self._comm_parent
            self._publish(
                msg_type,
                content,
                parent,
                buffers=[base64.b64decode(b) for b in e.buffers],
                metadata=e.metadata,  # ipywidgets' protocol version rides here
            )

    async def _comm_request(self, stream: Any, ident: Any, parent: dict[str, Any]) -> None:
        """A front end's comm_open, comm_msg or comm_close: into the log, for the
        runtime session that holds the comm; answered (idle) once Python has it, so
        ipywidgets sends a dragged slider's next value only then (its throttle)."""
        msg_type = parent["header"]["msg_type"]
        content = parent.get("content") or {}
        # While another request is handled (a running cell, an earlier comm
        # message), ipykernel (7.4+) hands comm messages over concurrently, without
        # the busy/idle around them (nor its pre-handler hook): ipywidgets counts
        # on that idle to send a dragged slider's next value.
        concurrent = self._dispatched != parent["header"]["msg_id"]
        if concurrent:
            self._status("busy", parent)
        try:
            async with self._comm_lock:
                await self._comm_to_log(msg_type, content, parent)
        finally:
            if concurrent:
                self._status("idle", parent)

    def note_dispatch(self) -> None:
        """From the pre-handler hook: the request ipykernel dispatches itself."""
        parent = self.get_parent("shell")  # type: ignore[no-untyped-call]
        self._dispatched = (parent or {}).get("header", {}).get("msg_id", "")

    async def _comm_to_log(self, msg_type: str, content: dict[str, Any], parent: Any) -> None:
        state = self.client.state
        comm_id = str(content.get("comm_id", ""))
        if msg_type == "comm_open":
            sid = self.agent.session_id or _live_session(state)
            if sid is None:  # the runtime is still booting (a tab that just connected)
                try:
                    await self._runtime()
                except RuntimeError as err:
                    self.log.warning("comm_open for %r: %s", comm_id, err)
                    return
                sid = self.agent.session_id
        else:
            row = state.t.comms.get(comm_id)
            sid = row.session_id if row is not None else None
        if sid is None:
            self.log.warning("%s for comm %r: no runtime holds it", msg_type, comm_id)
            return
        buffers = [base64.b64encode(bytes(b)).decode("ascii") for b in parent.get("buffers") or ()]
        event = messages.comm_event(msg_type, content, buffers, sid)
        if parent.get("metadata"):
            event = msgspec.structs.replace(event, metadata=dict(parent["metadata"]))
        self._comm_parent = parent
        try:
            (seq,) = await self.client.push([(_new_id(), event)])
        except Refused as err:
            self.log.warning("%s refused: %s", msg_type, err.reason)
            return
        await self._delivered(sid, seq)

    async def _delivered(self, sid: str, seq: int, timeout: float = 10.0) -> None:
        """Until the runtime session handed `seq` to Python (or ended, or `timeout`)."""

        def delivered(state: State) -> bool:
            rt = state.t.runtimes.get(sid)
            return rt is None or rt.state != "live" or rt.comms_delivered >= seq

        await wait_for(self.client, delivered, timeout)

    async def comm_info_request(self, stream: Any, ident: Any, parent: Any) -> None:
        """The comms open in the log, not only in this process."""
        target = (parent.get("content") or {}).get("target_name")
        content = {"status": "ok", "comms": messages.comm_info(self.client.state, target)}
        assert self.session is not None
        self.session.send(stream, "comm_info_reply", content, parent, ident)

    def _status(self, state: str, parent: Any) -> None:
        self._publish("status", {"execution_state": state}, parent)


def _live_session(state: Any) -> str | None:
    """The notebook's live runtime session (the latest started), if any."""
    live = [rt for rt in state.t.runtimes.values() if rt.state == "live"]
    return max(live, key=lambda rt: rt.started_at).session_id if live else None

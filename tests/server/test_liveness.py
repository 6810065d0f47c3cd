"""Runtimes elsewhere: their liveness is their connection; a lost one is ended and replaced."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from anode_ext.log import catalogue as ev
from anode_ext.log.remote import RemoteLog
from anode_ext.runtime.run import wait_final, wait_state

from ..log.test_remote import cell, connect, new_notebook  # noqa: F401  (fixture)


@pytest.fixture
def anode_config() -> dict[str, object]:
    return {"runtime_lost_after": 1.0}


def _id() -> str:
    return uuid.uuid4().hex


async def test_a_lost_runtime_fails_its_cell_and_the_next_runtime_takes_the_queue(
    jp_fetch: Any,
    jp_serverapp: Any,
    connect: Any,  # noqa: F811
) -> None:
    nb = await new_notebook(jp_fetch)
    remote: RemoteLog = await connect(nb)
    user: RemoteLog = await connect(nb)
    sid = _id()
    await remote.push([(_id(), ev.RuntimeSessionStarted(session_id=sid, info={}))])
    running, queued = _id(), _id()
    await user.push(
        [
            cell("c1", "while True: pass"),
            (_id(), ev.ExecutionRequested(execution_id=running, cell_id="c1", code="1")),
            (_id(), ev.ExecutionRequested(execution_id=queued, cell_id="c1", code="6 * 7")),
        ]
    )
    await remote.push(
        [
            (_id(), ev.ExecutionAssigned(execution_id=running, session_id=sid)),
            (_id(), ev.ExecutionStarted(execution_id=running, execution_count=1)),
        ]
    )
    # While the remote runtime is connected, the server starts none of its own,
    # though work is queued: asked now (as its loop asks at every append), it
    # declines. (Breaks this catches: the guard on live sessions deleted.)
    room = await jp_serverapp.web_app.settings["anode_notebooks"].room(nb)
    assert room.store.state.first_pending() == queued
    room.runtimes.ensure(room)
    assert room.agent_task is None
    assert user.state.t.executions[queued].state == "pending"
    assert user.state.t.runtimes[sid].state == "live"

    await remote.close()  # as if its machine went away
    assert await wait_final(user, running, 30)
    row = user.state.t.executions[running]
    assert row.state == "failed" and "runtime lost" in (row.reason or "")
    rt = user.state.t.runtimes[sid]
    assert rt.state == "ended" and "no connection" in (rt.reason or "")
    # The queue goes on, on a runtime the server starts.
    assert await wait_final(user, queued, 240)
    done = user.state.t.executions[queued]
    assert done.status == "ok" and done.session_id != sid
    outputs = user.state.t.outputs[queued].outputs
    assert outputs[0]["data"]["text/plain"] == "42"


async def test_a_runtime_that_reconnects_in_time_keeps_its_session(
    jp_fetch: Any,
    connect: Any,  # noqa: F811
) -> None:
    nb = await new_notebook(jp_fetch)
    remote: RemoteLog = await connect(nb)
    sid = _id()
    await remote.push([(_id(), ev.RuntimeSessionStarted(session_id=sid, info={}))])
    for blip in range(1, 4):
        assert remote._conn is not None
        remote._conn.close()  # a blip: the client is back well within a second
        for _ in range(200):  # until it is back (an event, not a guess of how long)
            if remote.reconnects >= blip and remote.connected:
                break
            await asyncio.sleep(0.02)
        assert remote.reconnects >= blip and remote.connected
    # Past runtime_lost_after (1 s) since the last blip, the session still stands.
    await asyncio.sleep(1.5)
    assert remote.state.t.runtimes[sid].state == "live"
    x = _id()
    await remote.push([(_id(), ev.ExecutionRequested(execution_id=x, cell_id=None, code="1"))])
    await remote.push([(_id(), ev.ExecutionAssigned(execution_id=x, session_id=sid))])
    assert await wait_state(remote, x, {"assigned"}, 5)

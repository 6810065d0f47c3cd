"""The agent on a real Node host and Pyodide: the queue, worked end to end.

One agent (and its hosts) serves the whole module, as one runtime serves a
notebook; crash and restart tests check that it comes back for the next test.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from anode_ext.log import Identity, Store
from anode_ext.log import catalogue as ev
from anode_ext.log.local import LocalHub, LocalLog
from anode_ext.log.rules import ALL_RIGHTS
from anode_ext.runtime.agent import Agent
from anode_ext.runtime.host import PyodideHost
from anode_ext.runtime.run import wait_final

pytestmark = pytest.mark.asyncio(loop_scope="module")


class Notebook:
    def __init__(self, store: Store, agent: Agent, alice: LocalLog, bob: LocalLog) -> None:
        self.store, self.agent, self.alice, self.bob = store, agent, alice, bob
        self.admin: LocalLog = alice

    async def request(self, code: str, *, by: LocalLog | None = None, **options: object) -> str:
        x = uuid.uuid4().hex
        e = ev.ExecutionRequested(execution_id=x, cell_id=None, code=code, **options)  # type: ignore[arg-type]
        await (by or self.alice).push([(uuid.uuid4().hex, e)])
        return x

    async def run(self, code: str, timeout: float = 60, **options: object) -> str:
        x = await self.request(code, **options)
        assert await wait_final(self.alice, x, timeout), f"{code!r} did not finish"
        return x

    def row(self, x: str):  # type: ignore[no-untyped-def]
        return self.store.state.t.executions[x]

    def text(self, x: str, name: str = "stdout") -> str:
        out = self.store.state.t.outputs.get(x)
        return "".join(o["text"] for o in (out.outputs if out else []) if o.get("name") == name)

    async def until(self, predicate, timeout: float = 30) -> None:  # type: ignore[no-untyped-def]
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while not predicate():
            assert loop.time() < end, "timed out waiting for the log"
            await self.alice.wait(self.store.head, 0.5)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def nb(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Notebook]:
    folder: Path = tmp_path_factory.mktemp("agent")
    store = Store.open(folder / "nb.anode", create=True)
    hub = LocalHub(store, poll_interval=0.2)
    runtime = hub.client(Identity("runtime", "runtime-test"))
    agent = Agent(runtime, lambda: PyodideHost(folder))
    task = asyncio.create_task(agent.run())
    await asyncio.wait_for(agent.ready(), 180)
    nb = Notebook(
        store, agent, hub.client(Identity("alice", "a")), hub.client(Identity("bob", "b"))
    )
    nb.admin = hub.client(Identity("root", "admin", ALL_RIGHTS))
    yield nb
    await agent.stop()
    await asyncio.wait_for(task, 30)
    assert all(rt.state == "ended" for rt in store.state.t.runtimes.values())
    store.close()


async def test_executions_run_in_request_order_with_their_outputs(nb: Notebook) -> None:
    xs = [await nb.request(f"print({i}); {i} * 10") for i in range(3)]
    for x in xs:
        assert await wait_final(nb.alice, x, 60), [(e.seq, e.name) for e in nb.store.events()]
    rows = [nb.row(x) for x in xs]
    assert [r.status for r in rows] == ["ok"] * 3
    counts = [r.execution_count for r in rows]
    assert counts == sorted(counts) and len(set(counts)) == 3
    assert rows[0].started_at <= rows[1].started_at <= rows[2].started_at  # type: ignore[operator]
    assert all(r.session_id == nb.agent.session_id for r in rows)
    outs = nb.store.state.t.outputs[xs[2]].outputs
    assert outs[0] == {"output_type": "stream", "name": "stdout", "text": "2\n"}
    assert outs[1]["output_type"] == "execute_result"
    assert outs[1]["data"]["text/plain"] == "20"
    assert outs[1]["execution_count"] == counts[2]


async def test_a_cell_that_ends_by_itself_is_not_interrupted_after(nb: Notebook) -> None:
    # The agent's watcher sees the cell's own ExecutionCompleted land; that is
    # not a cancel, and must not send the host an interrupt.
    host = nb.agent.host
    assert host is not None
    calls: list[None] = []
    real = host.interrupt

    def counting() -> None:
        calls.append(None)
        real()

    host.interrupt = counting  # type: ignore[method-assign]
    try:
        for _ in range(3):
            assert nb.row(await nb.run("1 + 1")).status == "ok"
        await asyncio.sleep(0.2)  # the watcher's last wake-up
    finally:
        host.interrupt = real  # type: ignore[method-assign]
    assert calls == []


async def test_errors_complete_with_the_ipython_traceback(nb: Notebook) -> None:
    x = await nb.run("1 / 0")
    row = nb.row(x)
    assert (row.state, row.status) == ("completed", "error")
    assert row.reply["ename"] == "ZeroDivisionError"
    err = nb.store.state.t.outputs[x].outputs[-1]
    assert err["output_type"] == "error" and err["ename"] == "ZeroDivisionError"
    plain = re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(err["traceback"]))
    assert "1 / 0" in plain and "ZeroDivisionError" in plain


async def test_display_update_and_clear_output_reach_the_log(nb: Notebook) -> None:
    code = (
        "from IPython.display import display, clear_output\n"
        "h = display('first', display_id=True)\n"
        "h.update('second')\n"
        "print('gone'); clear_output(wait=True); print('kept')\n"
    )
    x = await nb.run(code)
    assert nb.row(x).status == "ok"
    outs = nb.store.state.t.outputs[x].outputs
    assert [o["output_type"] for o in outs] == ["stream"]
    assert outs[0]["text"] == "kept\n"
    code = "from IPython.display import display\nh = display('a', display_id='d1')\n"
    x1 = await nb.run(code)
    x2 = await nb.run("h.update('b')")
    assert nb.store.state.t.outputs[x1].outputs[0]["data"]["text/plain"] == "'b'"
    assert nb.row(x2).status == "ok"


async def test_input_is_answered_through_the_log_by_a_collaborator(nb: Notebook) -> None:
    x = await nb.request("name = input('who? ')\nprint('hello', name)")
    await nb.until(lambda: x in nb.store.state.t.inputs)
    assert nb.store.state.t.inputs[x].prompt == "who? "
    await nb.bob.push([(uuid.uuid4().hex, ev.InputReplied(execution_id=x, value="Bob"))])
    assert await wait_final(nb.alice, x, 60)
    assert nb.row(x).status == "ok"
    assert "hello Bob" in nb.text(x)


async def test_input_without_stdin_fails_the_cell_instead_of_hanging(nb: Notebook) -> None:
    x = await nb.run("input('never')", allow_stdin=False)
    assert nb.row(x).status == "error"
    assert x not in nb.store.state.t.inputs


async def test_interrupt_request_stops_a_busy_loop(nb: Notebook) -> None:
    x = await nb.request("while True: pass")
    await nb.until(lambda: nb.row(x).state == "executing")
    sid = nb.row(x).session_id
    assert sid is not None
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    await nb.bob.push([(uuid.uuid4().hex, ev.InterruptRequested(session_id=sid))])
    assert await wait_final(nb.alice, x, 10)
    assert loop.time() - t0 < 10
    assert nb.row(x).reply["ename"] == "KeyboardInterrupt"
    assert nb.row(await nb.run("1")).status == "ok"  # the runtime is still usable


async def test_a_pending_execution_can_be_cancelled(nb: Notebook) -> None:
    slow = await nb.request("import time\nfor _ in range(20): time.sleep(0.1)")
    queued = await nb.request("print('must not run')")
    await nb.alice.push([(uuid.uuid4().hex, ev.ExecutionCancelled(execution_id=queued))])
    assert await wait_final(nb.alice, slow, 60)
    row = nb.row(queued)
    assert (row.state, row.started_at) == ("cancelled", None)
    assert nb.text(queued) == ""


async def test_a_crashed_runtime_fails_its_cell_and_the_queue_goes_on(nb: Notebook) -> None:
    before = nb.agent.session_id
    crash = await nb.request("import os; os._exit(3)")
    after = await nb.request("print('still here')")
    assert await wait_final(nb.alice, crash, 60)
    row = nb.row(crash)
    assert row.state == "failed"
    assert row.reason is not None and "runtime died" in row.reason
    assert await wait_final(nb.alice, after, 120)
    assert nb.row(after).status == "ok" and nb.text(after) == "still here\n"
    assert nb.row(after).session_id not in (None, before)
    old = nb.store.state.t.runtimes[before]  # type: ignore[index]
    assert old.state == "ended" and "runtime died" in (old.reason or "")


async def test_restart_gives_a_clean_namespace_and_a_new_session(nb: Notebook) -> None:
    await nb.run("secret = 42")
    sid = nb.agent.session_id
    assert sid is not None
    await nb.bob.push([(uuid.uuid4().hex, ev.RestartRequested(session_id=sid))])
    x = await nb.run("secret", timeout=120)
    row = nb.row(x)
    assert row.session_id != sid
    assert row.reply.get("ename") == "NameError"
    assert nb.store.state.t.runtimes[sid].reason == "restart requested"


async def test_a_session_ended_by_an_admin_is_replaced_and_its_host_closed(nb: Notebook) -> None:
    await nb.run("1")
    sid, host = nb.agent.session_id, nb.agent.host
    assert sid is not None and host is not None
    end = ev.RuntimeSessionEnded(session_id=sid, reason="ended by an admin")
    await nb.admin.push([(uuid.uuid4().hex, end)])
    x = await nb.run("'on a new session'", timeout=120)
    assert nb.row(x).status == "ok" and nb.row(x).session_id not in (None, sid)
    assert not host.alive


async def test_stop_ends_an_idle_agent_without_waiting_for_its_poll(
    tmp_path: Path,
) -> None:
    """An idle agent waits for the log with a poll (1 s by default); stop()
    must end that wait, not leave a kernel's shutdown waiting for it. With an
    hour-long poll, only the wake-up can end the run. Break this catches: stop()
    that only sets a flag the idle wait does not see."""
    store = Store.open(tmp_path / "nb.anode", create=True)
    hub = LocalHub(store, poll_interval=3600)
    agent = Agent(hub.client(Identity("runtime", "rt")), lambda: PyodideHost(tmp_path), poll=3600)
    task = asyncio.create_task(agent.run())
    try:
        await asyncio.wait_for(agent.ready(), 180)
        await asyncio.sleep(0.2)  # in its idle wait
        await agent.stop()
        await asyncio.wait_for(task, 30)  # an hour without the wake-up
        assert [rt.state for rt in store.state.t.runtimes.values()] == ["ended"]
    finally:
        task.cancel()
        store.close()

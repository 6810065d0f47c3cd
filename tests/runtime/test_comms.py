"""Comms through the log, on a real agent, Node host and Pyodide (ipywidgets inside).

A widget Python makes is a `CommOpened` in the log; a front end's message is a
`CommMessage` the runtime hands Python in log order, also while a cell runs;
what Python sends back is in the log too, and so is the widget's last state.
"""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from anode_ext.log import Identity, Refused, Store
from anode_ext.log import catalogue as ev
from anode_ext.log.local import LocalHub, LocalLog
from anode_ext.log.view import to_notebook
from anode_ext.runtime.agent import Agent
from anode_ext.runtime.host import PyodideHost
from anode_ext.runtime.run import wait_final

pytestmark = pytest.mark.asyncio(loop_scope="module")


class Notebook:
    def __init__(self, store: Store, agent: Agent, alice: LocalLog) -> None:
        self.store, self.agent, self.alice = store, agent, alice

    async def run(self, code: str, timeout: float = 60) -> str:
        x = uuid.uuid4().hex
        e = ev.ExecutionRequested(execution_id=x, cell_id=None, code=code)
        await self.alice.push([(uuid.uuid4().hex, e)])
        assert await wait_final(self.alice, x, timeout), f"{code!r} did not finish"
        row = self.store.state.t.executions[x]
        assert row.status == "ok", (row.reason, self.text(x, "stderr"))
        return x

    def text(self, x: str, name: str = "stdout") -> str:
        out = self.store.state.t.outputs.get(x)
        return "".join(o["text"] for o in (out.outputs if out else []) if o.get("name") == name)

    def events(self, kind: type[ev.Event], after: int = 0) -> list[Any]:
        return [e for e in self.store.events(after) if isinstance(e.args, kind)]

    async def until(self, predicate: Any, timeout: float = 30) -> None:
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while not predicate():
            assert loop.time() < end, "timed out waiting for the log"
            await self.alice.wait(self.store.head, 0.5)

    async def send(self, comm_id: str, data: dict[str, Any], **more: Any) -> int:
        e = ev.CommMessage(comm_id=comm_id, origin="client", data=data, **more)
        (seq,) = await self.alice.push([(uuid.uuid4().hex, e)])
        return seq

    def widget(self, model_name: str, after: int = 0) -> ev.CommOpened:
        opened = [
            e.args
            for e in self.events(ev.CommOpened, after)
            if e.args.data.get("state", {}).get("_model_name") == model_name
        ]
        assert opened, f"no {model_name} opened"
        return opened[-1]  # type: ignore[no-any-return]


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def nb(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Notebook]:
    folder: Path = tmp_path_factory.mktemp("comms")
    store = Store.open(folder / "nb.anode", create=True)
    hub = LocalHub(store, poll_interval=0.2)
    agent = Agent(hub.client(Identity("runtime", "runtime-test")), lambda: PyodideHost(folder))
    task = asyncio.create_task(agent.run())
    await asyncio.wait_for(agent.ready(), 180)
    yield Notebook(store, agent, hub.client(Identity("alice", "a")))
    await agent.stop()
    await asyncio.wait_for(task, 30)
    store.close()


async def test_a_slider_opens_a_comm_with_its_state_before_its_view(nb: Notebook) -> None:
    head = nb.store.head
    x = await nb.run("import ipywidgets as w\ns = w.IntSlider(value=3, max=50)\ns")
    opened = nb.widget("IntSliderModel", head)
    assert opened.target_name == "jupyter.widget" and opened.origin == "runtime"
    assert opened.data["state"]["value"] == 3 and opened.execution_id == x
    assert opened.session_id == nb.agent.session_id
    view = nb.store.state.t.outputs[x].outputs[-1]
    assert view["data"]["application/vnd.jupyter.widget-view+json"]["model_id"] == opened.comm_id
    seqs = {e.args.comm_id: e.seq for e in nb.events(ev.CommOpened, head)}
    shown = [e.seq for e in nb.events(ev.OutputAppended, head) if e.args.execution_id == x]
    assert seqs[opened.comm_id] < shown[-1]  # the model exists before any view of it
    row = nb.store.state.t.comms[opened.comm_id]
    assert row.live and row.state["value"] == 3


async def test_a_front_end_update_reaches_python_which_echoes_it(nb: Notebook) -> None:
    await nb.run(
        "import ipywidgets as w\ns = w.IntSlider(value=3, max=50)\nseen = []\n"
        "s.observe(lambda c: seen.append(c['new']), 'value')"
    )
    slider = nb.widget("IntSliderModel").comm_id
    seq = await nb.send(slider, {"method": "update", "state": {"value": 7}, "buffer_paths": []})
    sid = nb.agent.session_id
    assert sid is not None
    await nb.until(lambda: nb.store.state.t.runtimes[sid].comms_delivered >= seq)
    echo = [e.args for e in nb.events(ev.CommMessage, seq) if e.args.origin == "runtime"]
    assert echo and echo[0].data == {
        "method": "echo_update",
        "state": {"value": 7},
        "buffer_paths": [],
    }
    x = await nb.run("print(s.value, seen)")
    assert nb.text(x) == "7 [7]\n"
    assert nb.store.state.t.comms[slider].state["value"] == 7


async def test_python_changes_go_to_front_ends_and_into_the_saved_state(nb: Notebook) -> None:
    await nb.run("t = w.Text(value='a')")
    text = nb.widget("TextModel").comm_id
    head = nb.store.head
    await nb.run("t.value = 'changed in python'")
    sent = [e.args for e in nb.events(ev.CommMessage, head) if e.args.comm_id == text]
    assert sent[-1].data["method"] == "update"
    assert sent[-1].data["state"] == {"value": "changed in python"}
    saved = to_notebook(nb.store.state)["metadata"]["widgets"]
    state = saved["application/vnd.jupyter.widget-state+json"]["state"][text]
    assert state["model_name"] == "TextModel" and state["state"]["value"] == "changed in python"


async def test_a_message_during_a_running_cell_reaches_its_observer(nb: Notebook) -> None:
    await nb.run(
        "import time\nknob = w.IntSlider(value=0)\ngot = []\n"
        "knob.observe(lambda c: got.append(c['new']), 'value')"
    )
    knob = nb.widget("IntSliderModel").comm_id
    x = uuid.uuid4().hex
    # A busy loop (no sleep) that ends when the observer saw the front end's move.
    code = "t0 = time.time()\nwhile not got and time.time() - t0 < 30:\n    sum(range(1000))\nprint(got)"
    await nb.alice.push(
        [(uuid.uuid4().hex, ev.ExecutionRequested(execution_id=x, cell_id=None, code=code))]
    )
    await nb.until(lambda: nb.store.state.t.executions[x].state == "executing")
    await nb.send(knob, {"method": "update", "state": {"value": 42}, "buffer_paths": []})
    assert await wait_final(nb.alice, x, 60)
    assert nb.text(x) == "[42]\n"
    # The echo was made during the cell: it carries the execution's id.
    echo = [
        e.args
        for e in nb.events(ev.CommMessage)
        if e.args.comm_id == knob and e.args.origin == "runtime"
    ]
    assert echo[-1].execution_id == x


async def test_binary_buffers_round_trip(nb: Notebook) -> None:
    await nb.run("img = w.Image(value=bytes(range(256)), format='png')")
    image = nb.widget("ImageModel")
    assert image.data["buffer_paths"] == [["value"]]
    assert base64.b64decode(image.buffers[0]) == bytes(range(256))
    seq = await nb.send(
        image.comm_id,
        {"method": "update", "state": {}, "buffer_paths": [["value"]]},
        buffers=[base64.b64encode(b"\x00\xffnew").decode()],
    )
    sid = nb.agent.session_id
    assert sid is not None
    await nb.until(lambda: nb.store.state.t.runtimes[sid].comms_delivered >= seq)
    x = await nb.run("print(bytes(img.value))")
    assert nb.text(x) == "b'\\x00\\xffnew'\n"
    saved = to_notebook(nb.store.state)["metadata"]["widgets"]
    model = saved["application/vnd.jupyter.widget-state+json"]["state"][image.comm_id]
    assert model["buffers"] == [
        {"encoding": "base64", "path": ["value"], "data": base64.b64encode(b"\x00\xffnew").decode()}
    ]


async def test_closing_from_either_side(nb: Notebook) -> None:
    head = nb.store.head
    await nb.run("a = w.Button(); b = w.Button(); bid = b.model_id")
    opened = [
        e.args.comm_id
        for e in nb.events(ev.CommOpened, head)
        if e.args.data["state"]["_model_name"] == "ButtonModel"
    ]
    head = nb.store.head
    await nb.run("a.close()")
    closed = [e.args for e in nb.events(ev.CommClosed, head)]
    assert [c.comm_id for c in closed] == [opened[0]] and closed[0].origin == "runtime"
    assert opened[0] not in nb.store.state.t.comms
    close = ev.CommClosed(comm_id=opened[1], origin="client")
    (seq,) = await nb.alice.push([(uuid.uuid4().hex, close)])
    sid = nb.agent.session_id
    assert sid is not None
    await nb.until(lambda: nb.store.state.t.runtimes[sid].comms_delivered >= seq)
    x = await nb.run("from comm import get_comm_manager\nprint(bid in get_comm_manager().comms)")
    assert nb.text(x) == "False\n"
    with pytest.raises(Refused) as err:  # a closed comm takes no more messages
        await nb.send(opened[1], {"method": "update", "state": {}})
    assert err.value.status == 409


async def test_interact_captures_its_output_in_the_output_widget(nb: Notebook) -> None:
    await nb.run(
        "def square(n=2):\n    print('squared', n * n)\nui = w.interactive(square, n=(0, 10))"
    )
    out = nb.widget("OutputModel").comm_id
    state = nb.store.state.t.comms[out].state
    assert state["outputs"] == [{"output_type": "stream", "name": "stdout", "text": "squared 4\n"}]
    knob = nb.widget("IntSliderModel").comm_id
    seq = await nb.send(knob, {"method": "update", "state": {"value": 5}, "buffer_paths": []})
    sid = nb.agent.session_id
    assert sid is not None
    await nb.until(lambda: nb.store.state.t.runtimes[sid].comms_delivered >= seq)
    await nb.until(
        lambda: (
            nb.store.state.t.comms[out].state["outputs"][-1:]
            == [{"output_type": "stream", "name": "stdout", "text": "squared 25\n"}]
        )
    )


async def test_a_runtime_that_ends_closes_its_comms(nb: Notebook) -> None:
    await nb.run("gone = w.Checkbox()")
    comm = nb.widget("CheckboxModel").comm_id
    sid = nb.agent.session_id
    assert sid is not None
    await nb.alice.push([(uuid.uuid4().hex, ev.RestartRequested(session_id=sid))])
    await nb.until(lambda: nb.store.state.t.runtimes[sid].state == "ended")
    assert not nb.store.state.t.comms[comm].live  # kept for the saved state until a new one
    with pytest.raises(Refused) as err:
        await nb.send(comm, {"method": "update", "state": {"value": True}})
    assert "ended" in err.value.reason
    await asyncio.wait_for(nb.agent.ready(), 120)
    await nb.run("1")
    assert comm not in nb.store.state.t.comms

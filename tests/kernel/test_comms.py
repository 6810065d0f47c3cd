"""Widgets over the Jupyter protocol: the real anode-pyodide kernel and runtime.

What ipykernel does with ipywidgets, checked message by message: the slider's
comm_open with its state before its view, a front end's update seen by Python,
Python's change sent back, comm_info, a message while a cell runs, binary
buffers both ways, closing; and nbclient saving the widget state.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import nbformat
import pytest
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.manager import KernelManager, start_new_kernel
from nbclient import NotebookClient

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


@pytest.fixture(scope="module")
def kc() -> Iterator[BlockingKernelClient]:
    km: KernelManager
    km, client = start_new_kernel(kernel_name="anode-pyodide", startup_timeout=120)
    reply = client.execute_interactive("import ipywidgets as w", timeout=240)
    assert reply["content"]["status"] == "ok", reply
    yield client
    client.stop_channels()
    km.shutdown_kernel(now=False)


def run(kc: BlockingKernelClient, code: str, timeout: float = 60) -> list[dict[str, Any]]:
    """Execute; every iopub message of the request, in order (status excluded)."""
    msgs: list[dict[str, Any]] = []

    def hook(msg: dict[str, Any]) -> None:
        if msg["msg_type"] != "status":
            msgs.append(msg)

    reply = kc.execute_interactive(code, timeout=timeout, output_hook=hook)
    assert reply["content"]["status"] == "ok", (reply["content"], msgs)
    return msgs


def stdout(msgs: list[dict[str, Any]]) -> str:
    return "".join(m["content"]["text"] for m in msgs if m["msg_type"] == "stream")


def opened(msgs: list[dict[str, Any]], model: str) -> dict[str, Any]:
    found = [
        m
        for m in msgs
        if m["msg_type"] == "comm_open"
        and m["content"]["data"]["state"].get("_model_name") == model
    ]
    assert found, [m["msg_type"] for m in msgs]
    return found[-1]


def send(
    kc: BlockingKernelClient,
    msg_type: str,
    content: dict[str, Any],
    buffers: list[bytes] | None = None,
    metadata: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A front end's comm message on shell; waits for its idle (Python has it)."""
    msg = kc.session.msg(msg_type, content, metadata=metadata)
    kc.shell_channel.send(msg) if not buffers else kc.session.send(
        kc.shell_channel.socket, msg, buffers=buffers
    )
    deadline = time.monotonic() + 30
    seen = []
    while time.monotonic() < deadline:
        m = kc.get_iopub_msg(timeout=30)
        seen.append(m)
        if (
            m["msg_type"] == "status"
            and m["parent_header"].get("msg_id") == msg["header"]["msg_id"]
            and m["content"]["execution_state"] == "idle"
        ):
            return msg
    raise AssertionError(f"no idle for {msg_type}: {[s['msg_type'] for s in seen]}")


def update(comm_id: str, state: dict[str, Any]) -> dict[str, Any]:
    return {"comm_id": comm_id, "data": {"method": "update", "state": state, "buffer_paths": []}}


def test_a_slider_opens_its_comm_with_its_state_before_its_view(
    kc: BlockingKernelClient,
) -> None:
    msgs = run(kc, "from IPython.display import display\ns = w.IntSlider(value=3)\ndisplay(s)")
    comm = opened(msgs, "IntSliderModel")
    assert comm["content"]["target_name"] == "jupyter.widget"
    assert comm["content"]["data"]["state"]["value"] == 3
    assert comm["metadata"]["version"].startswith("2.")  # ipywidgets' protocol, as sent
    assert comm["parent_header"]["msg_type"] == "execute_request"
    views = [m for m in msgs if m["msg_type"] == "display_data"]
    assert views[0]["content"]["data"][WIDGET_VIEW]["model_id"] == comm["content"]["comm_id"]
    assert msgs.index(comm) < msgs.index(views[0])


def test_a_front_end_update_is_seen_by_python_and_echoed(kc: BlockingKernelClient) -> None:
    msgs = run(
        kc,
        "t = w.IntSlider(value=1)\nseen = []\nt.observe(lambda c: seen.append(c['new']), 'value')",
    )
    comm_id = opened(msgs, "IntSliderModel")["content"]["comm_id"]
    send(kc, "comm_msg", update(comm_id, {"value": 9}))
    assert stdout(run(kc, "print(t.value, seen)")) == "9 [9]\n"


def test_python_changes_are_sent_to_the_front_end(kc: BlockingKernelClient) -> None:
    msgs = run(kc, "u = w.IntSlider(value=1)")
    comm_id = opened(msgs, "IntSliderModel")["content"]["comm_id"]
    msgs = run(kc, "u.value = 33")
    sent = [m for m in msgs if m["msg_type"] == "comm_msg"]
    assert sent and sent[-1]["content"]["comm_id"] == comm_id
    assert sent[-1]["content"]["data"] == {
        "method": "update",
        "state": {"value": 33},
        "buffer_paths": [],
    }


def test_comm_info_lists_the_open_comms(kc: BlockingKernelClient) -> None:
    msgs = run(kc, "v = w.Checkbox()")
    comm_id = opened(msgs, "CheckboxModel")["content"]["comm_id"]
    kc.comm_info(target_name="jupyter.widget")
    reply = kc.get_shell_msg(timeout=10)
    assert reply["msg_type"] == "comm_info_reply"
    assert reply["content"]["comms"][comm_id] == {"target_name": "jupyter.widget"}
    kc.comm_info(target_name="other")
    assert kc.get_shell_msg(timeout=10)["content"]["comms"] == {}


def test_a_comm_message_during_a_running_cell_reaches_python(kc: BlockingKernelClient) -> None:
    msgs = run(
        kc,
        "import time\nk = w.IntSlider()\ngot = []\nk.observe(lambda c: got.append(c['new']), 'value')",
    )
    comm_id = opened(msgs, "IntSliderModel")["content"]["comm_id"]
    # A busy loop that ends once its observer saw the front end's move.
    code = "t0 = time.time()\nwhile not got and time.time() - t0 < 30:\n    sum(range(500))\nprint(got)"
    msg_id = kc.execute(code)
    time.sleep(1.0)  # the cell is running
    kc.shell_channel.send(kc.session.msg("comm_msg", update(comm_id, {"value": 5})))
    deadline = time.monotonic() + 60
    out = ""
    while time.monotonic() < deadline:
        m = kc.get_iopub_msg(timeout=60)
        if m["parent_header"].get("msg_id") != msg_id:
            continue
        if m["msg_type"] == "stream":
            out += m["content"]["text"]
        if m["msg_type"] == "status" and m["content"]["execution_state"] == "idle":
            break
    assert out == "[5]\n"


def test_binary_buffers_round_trip(kc: BlockingKernelClient) -> None:
    msgs = run(kc, "img = w.Image(value=b'\\x89PNG-bytes', format='png')")
    comm = opened(msgs, "ImageModel")
    assert comm["content"]["data"]["buffer_paths"] == [["value"]]
    assert [bytes(b) for b in comm["buffers"]] == [b"\x89PNG-bytes"]
    content = {
        "comm_id": comm["content"]["comm_id"],
        "data": {"method": "update", "state": {}, "buffer_paths": [["value"]]},
    }
    send(kc, "comm_msg", content, buffers=[b"\x00\x01new"])
    assert stdout(run(kc, "print(bytes(img.value))")) == "b'\\x00\\x01new'\n"


def test_closing_from_python_and_from_the_front_end(kc: BlockingKernelClient) -> None:
    msgs = run(kc, "b1 = w.Button(); b2 = w.Button(); bid = b2.model_id")
    first = [
        m
        for m in msgs
        if m["msg_type"] == "comm_open"
        and m["content"]["data"]["state"]["_model_name"] == "ButtonModel"
    ]
    one, two = (m["content"]["comm_id"] for m in first)
    msgs = run(kc, "b1.close()")
    assert [m["content"]["comm_id"] for m in msgs if m["msg_type"] == "comm_close"] == [one]
    send(kc, "comm_close", {"comm_id": two, "data": {}})
    out = run(kc, "from comm import get_comm_manager\nprint(bid in get_comm_manager().comms)")
    assert stdout(out) == "False\n"
    kc.comm_info()
    comms = kc.get_shell_msg(timeout=10)["content"]["comms"]
    assert one not in comms and two not in comms


def request_states(kc: BlockingKernelClient, timeout: float = 30) -> dict[str, Any]:
    """What JupyterLab's widget manager does on connecting: open ipywidgets' control
    comm and ask for every widget's state; the reply's data."""
    control = uuid.uuid4().hex
    opening = {"comm_id": control, "target_name": "jupyter.widget.control", "data": {}}
    send(kc, "comm_open", opening, metadata={"version": "1.0.0"})  # as JupyterLab sends
    msg = kc.session.msg("comm_msg", {"comm_id": control, "data": {"method": "request_states"}})
    kc.shell_channel.send(msg)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = kc.get_iopub_msg(timeout=timeout)
        if m["msg_type"] == "comm_msg" and m["content"]["comm_id"] == control:
            return dict(m["content"]["data"])
    raise AssertionError("no reply on the control comm")


def test_a_front_end_opens_the_control_comm_and_gets_every_state(
    kc: BlockingKernelClient,
) -> None:
    """What JupyterLab's widget manager does on reload (ipywidgets' control comm)."""
    msgs = run(kc, "z = w.FloatText(value=2.5)")
    model = opened(msgs, "FloatTextModel")["content"]["comm_id"]
    data = request_states(kc)
    assert data["method"] == "update_states"
    assert data["states"][model]["state"]["value"] == 2.5


def test_nbclient_runs_widgets_and_saves_their_state() -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("import ipywidgets as w\ns = w.IntSlider(value=4)\ns"),
        nbformat.v4.new_code_cell("s.value = 8\nprint(s.value)"),
    ]
    client = NotebookClient(nb, kernel_name="anode-pyodide", timeout=120, startup_timeout=120)
    client.execute()
    view = nb.cells[0].outputs[0]["data"][WIDGET_VIEW]
    state = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    assert state[view["model_id"]]["state"]["value"] == 8
    assert nb.cells[1].outputs[0]["text"] == "8\n"


def test_a_comm_open_sent_while_the_runtime_boots_waits_for_it() -> None:
    """JupyterLab opens the control comm as soon as it connects, often before Pyodide
    has booted: the open waits for the runtime instead of being dropped."""
    km, kc = start_new_kernel(kernel_name="anode-pyodide", startup_timeout=120)
    try:
        assert request_states(kc, timeout=60)["method"] == "update_states"
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=False)

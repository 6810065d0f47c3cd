"""The rules and the fold of comm events (ipywidgets' traffic in the log)."""

from __future__ import annotations

import base64

import pytest

from anode_ext.log import Identity, Refused
from anode_ext.log.view import to_notebook

from .helpers import ALICE, RUNTIME, e, log_bytes, start_session

READER = Identity("rita", "r", frozenset({"read"}))


@pytest.fixture
def nb(store):  # type: ignore[no-untyped-def]
    start_session(store)
    return store


def opened(comm_id: str = "w1", **more):  # type: ignore[no-untyped-def]
    data = {
        "state": {
            "_model_name": "IntSliderModel",
            "_model_module": "@jupyter-widgets/controls",
            "_model_module_version": "2.0.0",
            "value": 1,
        },
        "buffer_paths": [],
    }
    args = {
        "comm_id": comm_id,
        "session_id": "s1",
        "target_name": "jupyter.widget",
        "origin": "runtime",
        "data": data,
        **more,
    }
    return e("CommOpened", **args)


def update(comm_id: str, state, origin: str = "client", **more):  # type: ignore[no-untyped-def]
    data = {"method": "update", "state": state, "buffer_paths": more.pop("paths", [])}
    return e("CommMessage", comm_id=comm_id, origin=origin, data=data, **more)


def refused(store, events, who, status):  # type: ignore[no-untyped-def]
    before = log_bytes(store)
    with pytest.raises(Refused) as info:
        store.push(events, who)
    assert info.value.status == status, info.value.reason
    assert log_bytes(store) == before
    return info.value


def test_a_widget_state_folds_from_its_open_and_updates(nb) -> None:  # type: ignore[no-untyped-def]
    nb.push([opened()], RUNTIME)
    nb.push([update("w1", {"value": 5})], ALICE)
    png = base64.b64encode(b"\x89PNG").decode()
    nb.push(
        [update("w1", {"value": 6}, origin="runtime", buffers=[png], paths=[["image"]])], RUNTIME
    )
    row = nb.state.t.comms["w1"]
    assert row.state["value"] == 6 and row.buffers == {'["image"]': png}
    saved = to_notebook(nb.state)["metadata"]["widgets"]
    model = saved["application/vnd.jupyter.widget-state+json"]["state"]["w1"]
    assert model["model_name"] == "IntSliderModel" and model["state"]["value"] == 6
    assert model["buffers"] == [{"encoding": "base64", "path": ["image"], "data": png}]
    assert nb.replay().t == nb.state.t


def test_rights_origins_and_buffers_are_checked(nb) -> None:  # type: ignore[no-untyped-def]
    refused(nb, [opened()], ALICE, 403)  # the runtime's side is its session's alone
    refused(nb, [opened(origin="client")], READER, 403)  # a front end needs execute
    nb.push([opened()], RUNTIME)
    refused(nb, [opened()], RUNTIME, 409)  # open already
    refused(nb, [update("w1", {"value": 1}, buffers=["not base64!"])], ALICE, 400)
    refused(nb, [update("nope", {"value": 1})], ALICE, 409)
    refused(nb, [update("w1", {"value": 1}, origin="runtime")], ALICE, 403)
    refused(nb, [e("CommsDelivered", session_id="s1", seq=10**6)], RUNTIME, 400)
    refused(nb, [e("CommsDelivered", session_id="s1", seq=1)], ALICE, 403)


def test_a_comm_ends_with_its_session_and_goes_with_the_next(nb) -> None:  # type: ignore[no-untyped-def]
    nb.push([opened()], RUNTIME)
    nb.push([e("RuntimeSessionEnded", session_id="s1", reason="gone")], RUNTIME)
    assert not nb.state.t.comms["w1"].live
    assert "widgets" in to_notebook(nb.state)["metadata"]  # its last state is kept
    err = refused(nb, [update("w1", {"value": 2})], ALICE, 409)
    assert "ended" in err.reason
    start_session(nb, "s2")
    assert "w1" not in nb.state.t.comms
    assert nb.replay().t == nb.state.t


def test_closing_drops_the_comm(nb) -> None:  # type: ignore[no-untyped-def]
    nb.push([opened(), e("CommClosed", comm_id="w1", origin="runtime")], RUNTIME)
    assert "w1" not in nb.state.t.comms
    refused(nb, [e("CommClosed", comm_id="w1", origin="client")], ALICE, 409)

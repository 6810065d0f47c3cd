import base64

import pytest

from anode_ext.log import Refused
from anode_ext.log.crdt import edit

from .helpers import ALICE, BOB, cell, e, log_bytes


def test_concurrent_edits_from_two_clients_both_survive(store):
    store.push([cell("c", "hello world")], ALICE)
    base = store.state.doc(store.state.t.cells["c"])
    from_alice = edit(base, "hello brave world", client_id=101)
    from_bob = edit(base, "hello world!", client_id=202)
    store.push([e("CellSourceEdited", cell_id="c", update=from_alice)], ALICE)
    store.push([e("CellSourceEdited", cell_id="c", update=from_bob)], BOB)
    assert store.state.t.cells["c"].source == "hello brave world!"
    assert store.replay().t.cells["c"].source == "hello brave world!"


def test_whole_replace_then_crdt_edit(store):
    store.push([cell("c", "a = 1")], ALICE)
    store.push([e("CellSourceChanged", cell_id="c", source="a = 2")], BOB)
    base = store.state.doc(store.state.t.cells["c"])
    store.push(
        [e("CellSourceEdited", cell_id="c", update=edit(base, "a = 2  # two", client_id=7))], ALICE
    )
    store.push([e("CellSourceChanged", cell_id="c", source="b = 2  # two")], BOB)
    base = store.state.doc(store.state.t.cells["c"])
    store.push(
        [e("CellSourceEdited", cell_id="c", update=edit(base, "b = 2  # two!", client_id=7))], ALICE
    )
    assert store.state.t.cells["c"].source == "b = 2  # two!"
    assert store.replay().encode() == store.state.encode()


def test_garbage_updates_are_refused(store):
    store.push([cell("c", "x")], ALICE)
    before = log_bytes(store)
    with pytest.raises(Refused, match="base64"):
        store.push([e("CellSourceEdited", cell_id="c", update="***")], ALICE)
    with pytest.raises(Refused, match="not a Yjs update"):
        store.push(
            [e("CellSourceEdited", cell_id="c", update=base64.b64encode(b"\x05\xff\xff").decode())],
            ALICE,
        )
    assert log_bytes(store) == before
    assert store.state.t.cells["c"].source == "x"

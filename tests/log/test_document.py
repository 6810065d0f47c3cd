"""The notebook document in the log: browsers' updates become typed events,
typed events from everyone else are written into the document, and the
log's updates rebuild it."""

from __future__ import annotations

import base64

import pytest

from anode_ext.log import Identity, Refused, Store
from anode_ext.log import store as store_mod

from .doccheck import assert_agree, doc_view
from .helpers import ALICE, BOB, RUNTIME, cell, e, log_bytes, run, start_session, stream
from .ybrowser import Browser

VIEWER = Identity("viola", "client-v", frozenset({"read", "execute"}))


@pytest.fixture
def doc_store(tmp_path):
    with Store.open(tmp_path / "nb.anode", create=True, document=True) as s:
        s.push([e("NotebookInitialized", title="t"), cell("c1", "x = 1", "V")], ALICE)
        s.sync_document(ALICE)  # its first reader
        yield s


def names(store, after=0):
    return [(env.name.removeprefix("v1."), env.user) for env in store.events(after)]


def test_a_rest_event_is_written_into_the_document_with_its_update(doc_store):
    assert names(doc_store) == [
        ("NotebookInitialized", "alice"),
        ("CellCreated", "alice"),
        ("DocumentUpdated", "alice"),
    ]
    assert doc_view(doc_store) == [
        {"id": "c1", "cell_type": "code", "source": "x = 1", "metadata": {}, "outputs": []}
    ]
    head = doc_store.head
    doc_store.push(
        [
            cell("c0", "# title", "F", "markdown"),
            e("CellSourceChanged", cell_id="c1", source="x = 2"),
            e("CellMetadataSet", cell_id="c1", key="tags", value=["a"]),
            e("NotebookMetadataSet", key="kernelspec", value={"name": "anode-pyodide"}),
        ],
        BOB,
    )
    # one update for the whole push
    assert [n for n, _ in names(doc_store, head)].count("DocumentUpdated") == 1
    assert [c["id"] for c in doc_view(doc_store)] == ["c0", "c1"]
    assert_agree(doc_store)


def test_keystrokes_from_two_browsers_merge_and_are_each_one_event(doc_store):
    a, b = Browser(doc_store), Browser(doc_store)
    head = doc_store.head
    push_a = a.type_text("c1", 5, "0")  # "x = 10"
    push_b = b.type_text("c1", 0, "# b\n")  # concurrent: b has not seen a's edit
    doc_store.push([push_a], ALICE)
    doc_store.push([push_b], BOB)
    assert doc_store.state.t.cells["c1"].source == "# b\nx = 10"
    assert names(doc_store, head) == [("CellSourceEdited", "alice"), ("CellSourceEdited", "bob")]
    a.pull(doc_store)
    b.pull(doc_store)
    assert str(a.cells[0]["source"]) == str(b.cells[0]["source"]) == "# b\nx = 10"
    assert_agree(doc_store)
    assert doc_store.replay().t == doc_store.state.t


def test_non_ascii_keystrokes_fold_by_code_point(doc_store):
    a = Browser(doc_store)
    doc_store.push([a.type_text("c1", 0, "é😀")], ALICE)
    a.pull(doc_store)
    doc_store.push([a.type_text("c1", 2, "ß")], ALICE)
    assert doc_store.state.t.cells["c1"].source == "é😀ßx = 1"
    assert_agree(doc_store)


def test_structure_from_a_browser_becomes_typed_events(doc_store):
    a = Browser(doc_store)
    head = doc_store.head
    doc_store.push([a.insert_cell(0, "m1", "# hello", "markdown")], ALICE)
    a.pull(doc_store)
    doc_store.push([a.insert_cell(2, "c2", "y = 2")], ALICE)
    a.pull(doc_store)
    doc_store.push([a.move_cell("c2", 0)], ALICE)
    a.pull(doc_store)
    doc_store.push([a.set_type("m1", "raw")], ALICE)
    a.pull(doc_store)
    doc_store.push([a.set_metadata("c1", "tags", ["x"])], ALICE)
    a.pull(doc_store)
    doc_store.push([a.set_metadata("c1", "tags", None)], ALICE)
    a.pull(doc_store)
    doc_store.push([a.delete_cell("c1")], ALICE)
    a.pull(doc_store)
    typed = [n for n, _ in names(doc_store, head) if n != "DocumentUpdated"]
    assert typed == [
        "CellCreated",
        "CellCreated",
        "CellMoved",
        "CellTypeChanged",
        "CellMetadataSet",
        "CellMetadataSet",
        "CellDeleted",
    ]
    assert all(user == "alice" for _, user in names(doc_store, head))
    assert [c.id for c in doc_store.state.ordered_cells()] == ["c2", "m1"] == a.ids()
    assert doc_store.state.t.cells["m1"].cell_type == "raw"
    assert_agree(doc_store)


def test_pasting_fifty_cells_is_one_push_and_keeps_their_outputs(doc_store):
    a = Browser(doc_store)

    def paste(b):
        import pycrdt as y

        for i in range(50):
            out = y.Map({"output_type": "stream", "name": "stdout", "text": y.Text(f"{i}\n")})
            b.cells.insert(
                1 + i,
                y.Map(
                    {
                        "id": f"p{i}",
                        "cell_type": "code",
                        "source": y.Text(f"print({i})"),
                        "metadata": y.Map({}),
                        "outputs": y.Array([out]),
                        "execution_count": float(i + 1),
                    }
                ),
            )

    seqs = doc_store.push([a.edit(paste)], ALICE)
    assert len(seqs) == 1
    ids = [c.id for c in doc_store.state.ordered_cells()]
    assert ids == ["c1"] + [f"p{i}" for i in range(50)]
    assert doc_store.state.t.cells["p7"].execution_count == 8
    assert_agree(doc_store)


def test_two_browsers_moving_one_cell_at_once_leave_one_copy(doc_store):
    doc_store.push([cell("c2", "b", "k"), cell("c3", "c", "s")], ALICE)
    a, b = Browser(doc_store), Browser(doc_store)
    doc_store.push([a.move_cell("c1", 2)], ALICE)
    doc_store.push([b.move_cell("c1", 1)], BOB)
    ids = [c["id"] for c in doc_view(doc_store)]
    assert sorted(ids) == ["c1", "c2", "c3"]
    assert_agree(doc_store)
    a.pull(doc_store)
    b.pull(doc_store)
    assert a.ids() == b.ids() == ids


def test_a_stale_browser_reconnects_and_nothing_is_duplicated(doc_store):
    stale = Browser(doc_store)
    fresh = Browser(doc_store)
    for i in range(5):
        doc_store.push([fresh.insert_cell(1 + i, f"n{i}", f"n = {i}")], BOB)
    # the stale tab edits what it has, then catches up
    doc_store.push([stale.type_text("c1", 5, "1")], ALICE)
    doc_store.push([stale.insert_cell(1, "s1", "s")], ALICE)
    stale.pull(doc_store)
    fresh.pull(doc_store)
    assert stale.ids() == fresh.ids() == [c["id"] for c in doc_view(doc_store)]
    assert len(set(stale.ids())) == len(stale.ids()) == 7
    # the same push again (a retry after a lost answer) appends nothing
    head = doc_store.head
    retry = stale.type_text("c1", 0, "#")
    first = doc_store.push([retry], ALICE)
    assert doc_store.push([retry], ALICE) == first
    assert doc_store.head == head + 1
    assert_agree(doc_store)


def test_refused_updates_append_nothing_and_leave_the_document_as_it_was(doc_store):
    start_session(doc_store)
    run(doc_store, "x1")
    doc_store.push([stream("x1", "out\n")], RUNTIME)
    before = (log_bytes(doc_store), doc_store.document.notebook())

    def write_output(b):
        import pycrdt as y

        b.cells[0]["outputs"].append(
            y.Map({"output_type": "stream", "name": "stdout", "text": "x"})
        )

    def tab():
        # A refused tab starts again from the server's document: its refused
        # items would otherwise ride along with its next updates.
        return Browser(doc_store)

    garbage = base64.b64encode(b"\x05\xff").decode()
    refusals = [
        ([tab().edit(write_output)], ALICE, 403, "written by runtimes"),
        (
            [tab().edit(lambda b: b.cells[0].__setitem__("execution_count", 9.0))],
            ALICE,
            403,
            "runtimes",
        ),
        ([tab().type_text("c1", 0, "#")], VIEWER, 403, "'write' right"),
        ([e("DocumentUpdated", update="***")], ALICE, 400, "base64"),
        ([e("DocumentUpdated", update=garbage)], ALICE, 400, "Yjs update"),
        ([e("CellSourceEdited", cell_id="c1", update="AA==", delta=[])], ALICE, 400, "server"),
        ([cell("c9"), tab().type_text("c1", 0, "#"), cell("c9")], ALICE, 400, "twice|exists"),
    ]
    for batch, who, status, reason in refusals:
        with pytest.raises(Refused, match=reason) as err:
            doc_store.push(batch, who)
        assert err.value.status in (status, 409)
        assert (log_bytes(doc_store), doc_store.document.notebook()) == before
    # clearing outputs is allowed: JupyterLab's "Clear Outputs"
    b = Browser(doc_store)

    def clear(b):
        del b.cells[0]["outputs"][0:1]
        b.cells[0]["execution_count"] = None

    doc_store.push([b.edit(clear)], ALICE)
    assert doc_view(doc_store)[0]["outputs"] == []
    assert_agree(doc_store)


def test_a_log_without_a_document_refuses_document_updates(tmp_path, doc_store):
    update = Browser(doc_store).type_text("c1", 0, "#")
    with Store.open(tmp_path / "plain.anode", create=True) as plain:
        plain.push([cell("c1", "x = 1")], ALICE)
        with pytest.raises(Refused, match="keeps no document") as err:
            plain.push([update], ALICE)
        assert err.value.status == 409
        assert plain.document is None


def test_outputs_and_queue_state_reach_the_document(doc_store):
    start_session(doc_store)
    doc_store.push([e("ExecutionRequested", execution_id="x1", cell_id="c1", code="x")], ALICE)
    ycell = doc_store.document.cells[0]
    assert ycell["execution_state"] == "running"  # [*] while queued, as JupyterLab shows it
    doc_store.push(
        [
            e("ExecutionAssigned", execution_id="x1", session_id="s1"),
            e("ExecutionStarted", execution_id="x1", execution_count=3),
        ],
        RUNTIME,
    )
    assert ycell["execution_count"] is None  # the count comes with the end, not while running
    for i in range(20):
        doc_store.push([stream("x1", f"line {i}\n")], RUNTIME)
    text = ycell["outputs"][0]["text"]
    assert str(text).count("\n") == 20 and len(ycell["outputs"]) == 1  # appended, one output
    display = {"output_type": "display_data", "data": {"text/plain": "a"}, "metadata": {}}
    display["transient"] = {"display_id": "d"}
    doc_store.push([e("OutputAppended", execution_id="x1", output=display)], RUNTIME)
    doc_store.push(
        [e("DisplayUpdated", display_id="d", data={"text/plain": "b"}, execution_id="x1")],
        RUNTIME,
    )
    assert ycell["outputs"][1]["data"]["text/plain"] == "b"
    doc_store.push([e("OutputsCleared", execution_id="x1", wait=True)], RUNTIME)
    assert len(ycell["outputs"]) == 2  # clear_output(wait=True) waits for the next output
    doc_store.push([stream("x1", "after\n")], RUNTIME)
    assert [str(o["text"]) for o in ycell["outputs"]] == ["after\n"]
    doc_store.push([e("ExecutionCompleted", execution_id="x1", status="ok")], RUNTIME)
    assert (ycell["execution_state"], ycell["execution_count"]) == ("idle", 3.0)
    assert_agree(doc_store)


def test_the_document_reopens_from_its_snapshot_and_tail(tmp_path, monkeypatch):
    monkeypatch.setattr(store_mod, "DOCUMENT_SNAPSHOT_EVERY", 10)
    path = tmp_path / "nb.anode"
    with Store.open(path, create=True, document=True) as s:
        s.push([cell("c1", "")], ALICE)
        s.sync_document(ALICE)
        a = Browser(s)
        for ch in "print('hello, world')":
            s.push([a.type_text("c1", len(str(a.cells[0]["source"])), ch)], ALICE)
            a.pull(s)
        want = s.document.notebook()
        snapshots = s._db.execute("SELECT seq FROM doc_snapshots").fetchall()
        assert len(snapshots) == 1 and snapshots[0][0] > 10
    with Store.open(path, document=True) as s:
        assert s.document.notebook() == want
        assert s.state.t.cells["c1"].source == "print('hello, world')"
        assert_agree(s)
    with Store.open(path, document=True) as s:
        assert s.document is not None  # a log that has its document keeps it


def test_a_store_served_late_gets_its_document_from_the_tables(tmp_path):
    path = tmp_path / "nb.anode"
    with Store.open(path, create=True) as plain:
        plain.push([cell("c1", "a"), cell("c2", "b", "k")], ALICE)
    with Store.open(path, document=True) as s:
        assert s.document is None  # nobody asked for it yet
        seq = s.sync_document(ALICE)
        assert seq == 3 and s.sync_document(ALICE) is None
        assert [c["id"] for c in doc_view(s)] == ["c1", "c2"]
        assert_agree(s)


def test_trust_is_never_shared_through_the_log(doc_store):
    """A collaborator's `trusted` (JupyterLab writes it into a cell's metadata)
    would make every viewer run that cell's scripts: the log keeps none."""
    a = Browser(doc_store)
    head = doc_store.head
    doc_store.push([a.set_metadata("c1", "trusted", True)], ALICE)
    a.pull(doc_store)

    def pasted(b):
        import pycrdt as y

        html = {"output_type": "display_data", "data": {"text/html": "<script>x()</script>"}}
        html["metadata"] = {}
        b.cells.insert(
            1,
            y.Map(
                {
                    "id": "evil",
                    "cell_type": "code",
                    "source": y.Text(""),
                    "metadata": y.Map({"trusted": True, "tags": ["t"]}),
                    "outputs": y.Array([y.Map(html)]),
                    "execution_count": None,
                }
            ),
        )

    doc_store.push([a.edit(pasted)], ALICE)
    names_after = [n for n, _ in names(doc_store, head)]
    assert "CellMetadataSet" not in names_after
    cells = {c["id"]: c for c in doc_view(doc_store)}
    assert "trusted" not in cells["c1"]["metadata"]
    assert cells["evil"]["metadata"] == {"tags": ["t"]}
    assert_agree(doc_store)
    a.pull(doc_store)
    assert "trusted" not in a.cells[1]["metadata"]


def test_a_notebook_on_another_kernel_takes_outputs_from_the_browser(doc_store):
    """JupyterLab runs it on that kernel and writes the outputs into the document."""
    from anode_ext.kernel import KERNEL_NAME
    from anode_ext.log.state import ANODE_KERNEL

    assert ANODE_KERNEL == KERNEL_NAME
    doc_store.push([e("NotebookMetadataSet", key="kernelspec", value={"name": "python3"})], ALICE)
    a = Browser(doc_store)

    def output(b):
        import pycrdt as y

        out = y.Map({"output_type": "stream", "name": "stdout", "text": y.Text("3\n")})
        b.cells[0]["outputs"].append(out)
        b.cells[0]["execution_count"] = 1.0

    doc_store.push([a.edit(output)], ALICE)
    row = doc_store.state.t.cells["c1"]
    assert row.execution_count == 1
    assert doc_view(doc_store)[0]["outputs"][0]["text"] == "3\n"
    assert_agree(doc_store)

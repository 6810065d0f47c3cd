from anode_ext.log.materialize import fix_overwrites
from anode_ext.log.view import state_json

from .helpers import ALICE, RUNTIME, cell, e, run, start_session, stream


def outputs(store, cell_id="c1"):
    return next(c for c in state_json(store.state)["cells"] if c["id"] == cell_id)["outputs"]


def setup(store):
    store.push([cell("c1")], ALICE)
    start_session(store)
    run(store, "x1")


def test_streams_merge_like_jupyter_front_ends(store):
    setup(store)
    store.push(
        [
            stream("x1", "a"),
            stream("x1", "b\n"),
            stream("x1", "err\n", "stderr"),
            stream("x1", "c\n"),
        ],
        RUNTIME,
    )
    assert [(o["name"], o["text"]) for o in outputs(store)] == [
        ("stdout", "ab\n"),
        ("stderr", "err\n"),
        ("stdout", "c\n"),
    ]


def test_carriage_returns_and_backspaces():
    assert fix_overwrites("10%\r20%\r30%\n") == "30%\n"
    assert fix_overwrites("abc\b\bd") == "ad"
    assert fix_overwrites("a\r\nb") == "a\nb"
    assert fix_overwrites("progress 1\r") == "progress 1\r"


def test_progress_bar_across_chunks(store):
    setup(store)
    store.push([stream("x1", "1/3\r"), stream("x1", "2/3\r"), stream("x1", "3/3\n")], RUNTIME)
    assert outputs(store) == [{"output_type": "stream", "name": "stdout", "text": "3/3\n"}]


def test_display_updated_updates_every_output_with_that_id(store):
    setup(store)
    shown = {
        "output_type": "display_data",
        "data": {"text/plain": "'a'"},
        "metadata": {},
        "transient": {"display_id": "d1"},
    }
    store.push(
        [
            e("OutputAppended", execution_id="x1", output=shown),
            e("OutputAppended", execution_id="x1", output=shown),
            e("ExecutionCompleted", execution_id="x1", status="ok"),
        ],
        RUNTIME,
    )
    store.push([cell("c2", position="W")], ALICE)
    run(store, "x2", "c2", count=2)
    store.push(
        [
            e("OutputAppended", execution_id="x2", output=shown),
            e("DisplayUpdated", display_id="d1", data={"text/plain": "'b'"}, execution_id="x2"),
        ],
        RUNTIME,
    )
    for cid in ("c1", "c2"):
        for out in outputs(store, cid):
            assert out["data"] == {"text/plain": "'b'"}
            assert "transient" not in out


def test_outputs_cleared(store):
    setup(store)
    store.push([stream("x1", "a\n"), e("OutputsCleared", execution_id="x1", wait=True)], RUNTIME)
    assert len(outputs(store)) == 1
    store.push([stream("x1", "b\n")], RUNTIME)
    assert outputs(store) == [{"output_type": "stream", "name": "stdout", "text": "b\n"}]
    store.push([e("OutputsCleared", execution_id="x1")], RUNTIME)
    assert outputs(store) == []


def test_new_execution_replaces_cell_outputs(store):
    setup(store)
    store.push(
        [stream("x1", "first\n"), e("ExecutionCompleted", execution_id="x1", status="ok")], RUNTIME
    )
    run(store, "x2", count=2)
    assert outputs(store) == []
    store.push([stream("x2", "second\n")], RUNTIME)
    assert outputs(store)[0]["text"] == "second\n"
    assert store.state.t.outputs["x1"].outputs[0]["text"] == "first\n"


def test_changing_to_markdown_drops_outputs(store):
    setup(store)
    store.push(
        [stream("x1", "a\n"), e("ExecutionCompleted", execution_id="x1", status="ok")], RUNTIME
    )
    store.push([e("CellTypeChanged", cell_id="c1", cell_type="markdown")], ALICE)
    c = state_json(store.state)["cells"][0]
    assert (c["outputs"], c["execution_count"]) == ([], None)


def test_chunked_merge_equals_merging_the_whole_text(store):
    """Only the last line is re-fixed on each chunk; the result must not depend on chunking."""
    setup(store)
    chunks = ["line 1\nab", "c\b\bX", "\r", "\nprogress 1\r", "progress 2\r", "\n", "done\b!\n"]
    store.push([stream("x1", t) for t in chunks], RUNTIME)
    assert outputs(store)[0]["text"] == fix_overwrites("".join(chunks))

import json
from pathlib import Path

import nbformat
import pytest

from anode_ext.cli import import_notebook
from anode_ext.log import Refused, Store
from anode_ext.log.ipynb import NotebookFormatError, export_notebook, export_text, import_events

from .doccheck import assert_agree, doc_view
from .helpers import ALICE, BOB, cell, e
from .ybrowser import Browser

NOTEBOOKS = sorted((Path(__file__).parent / "notebooks").glob("*.ipynb"))


def comparable(nb, with_ids=True):
    cells = []
    for c in nb.cells:
        d = {k: v for k, v in c.items() if with_ids or k != "id"}
        cells.append(json.loads(json.dumps(d)))
    return {"metadata": json.loads(json.dumps(nb.metadata)), "cells": cells}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_import_then_export_gives_the_same_notebook(tmp_path, path):
    original = nbformat.read(path, as_version=4)
    import_notebook(path, tmp_path / "nb.anode")
    with Store.open(tmp_path / "nb.anode") as store:
        exported = export_notebook(store.state)
    nbformat.validate(exported)
    with_ids = original.nbformat_minor >= 5
    assert comparable(exported, with_ids) == comparable(original, with_ids)
    kinds = {o["output_type"] for c in original.cells for o in c.get("outputs", [])}
    if path.name == "demo.ipynb":
        assert kinds == {"stream", "execute_result", "display_data", "error"}
        assert {c.cell_type for c in original.cells} == {"code", "markdown", "raw"}


def test_invalid_notebooks_are_refused(tmp_path):
    bad = tmp_path / "bad.ipynb"
    bad.write_text('{"cells": 3}')
    with pytest.raises(NotebookFormatError):
        import_notebook(bad, tmp_path / "bad.anode")
    assert not (tmp_path / "bad.anode").exists()
    with pytest.raises(NotebookFormatError, match="invalid nbformat"):
        import_events(
            {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [{"cell_type": "code"}]}
        )


# --- nbformat's own test notebooks -------------------------------------------

NBFORMAT = Path(__file__).parent / "notebooks" / "nbformat"
NBFORMAT_NOTEBOOKS = sorted(NBFORMAT.glob("*.ipynb"))
# Invalid on purpose (nbformat's tests expect it to refuse them): what Anode says.
REFUSED = {
    "invalid.ipynb": "invalid nbformat: 'source' is a required property",
    "invalid_cell_id.ipynb": "invalid nbformat: '\\$illegal_chars' does not match",
    "v4_5_invalid_metadata.ipynb": "invalid nbformat: 'BAD: should be a dict'",
    "no_min_version.ipynb": "invalid nbformat: 'nbformat_minor' is a required property",
    "test3_no_metadata.ipynb": "not a notebook .*missing a key: metadata",
    "test3_no_worksheets.ipynb": "not a notebook .*missing an expected key: worksheets",
    "test3_worksheet_with_no_cells.ipynb": "not a notebook .*missing an expected key: cells",
}


def test_every_nbformat_test_notebook_is_covered():
    names = {p.name for p in NBFORMAT_NOTEBOOKS}
    assert len(names) == 20 and set(REFUSED) < names
    assert "test4plus.ipynb" in names and "test2.ipynb" in names


def written_by_nbformat(nb):
    """A notebook as nbformat writes and reads it back: its own normalizations (sources
    and multi-line strings joined, `orig_nbformat` of an upgrade and `trusted` dropped),
    as plain JSON. Every field is compared after that."""
    text = nbformat.writes(nb, version=4)
    return json.loads(json.dumps(nbformat.reads(text, as_version=4)))


def file_ids(path, n):
    """The cell ids the file itself gives (v4 only, first of each; of `n` cells): nbformat
    invents the missing and replaces the repeated ones anew on every read."""
    raw = json.loads(path.read_text())
    if raw.get("nbformat") != 4:
        return [None] * n
    seen, out = set(), []
    for c in raw["cells"]:
        cid = c.get("id")
        out.append(cid if cid is not None and cid not in seen else None)
        seen.add(cid)
    return out


@pytest.mark.parametrize("path", NBFORMAT_NOTEBOOKS, ids=[p.name for p in NBFORMAT_NOTEBOOKS])
def test_nbformat_test_notebooks_import_and_export_keep_every_field(tmp_path, path):
    dest = tmp_path / "nb.anode"
    if path.name in REFUSED:
        with pytest.raises(Exception):  # noqa: B017 - nbformat refuses it too
            nbformat.validate(nbformat.read(path, as_version=4))
        with pytest.raises(NotebookFormatError, match=REFUSED[path.name]):
            import_notebook(path, dest)
        assert not dest.exists()
        return
    original = nbformat.read(path, as_version=4)
    import_notebook(path, dest)
    with Store.open(dest) as store:
        exported = export_text(store.state)
        assert store.replay().t == store.state.t
    want, got = written_by_nbformat(original), json.loads(json.dumps(nbformat.reads(exported, 4)))
    # Anode writes nbformat 4.5 at least, so every cell has an id.
    assert got.pop("nbformat_minor") == max(want.pop("nbformat_minor"), 5)
    ids = [c.pop("id") for c in got["cells"]]
    assert len(set(ids)) == len(ids)
    for c in want["cells"]:
        c.pop("id", None)
    given = file_ids(path, len(ids))
    assert [i if f is not None else None for i, f in zip(ids, given, strict=True)] == given
    assert got == want


def test_a_newer_minor_is_kept_through_the_log_and_the_document(tmp_path):
    """test4plus.ipynb (nbformat 4.99): unknown top-level, cell and output fields, a cell
    type and an output type of the future. Shown to browsers as a raw cell and the
    output as it is; a browser's edit of that cell's source is written back."""
    nb = nbformat.read(NBFORMAT / "test4plus.ipynb", as_version=4)
    with Store.open(tmp_path / "nb.anode", create=True, document=True) as store:
        store.append([(f"i{i}", x) for i, x in enumerate(import_events(nb))], ALICE)
        store.sync_document(ALICE)
        assert_agree(store)
        shown = {c["id"]: c for c in doc_view(store)}
        assert shown["future-10"]["cell_type"] == "raw"
        assert {"output_type": "future output", "some key": ["some data"]} in shown["future-11"][
            "outputs"
        ]
        browser = Browser(store)
        store.push([browser.type_text("future-10", 0, "typed")], BOB)
        store.push([browser.type_text("future-3", 0, "# ")], BOB)
        assert_agree(store)
        assert store.replay().t == store.state.t
        out = export_notebook(store.state)
    cells = {c["id"]: c for c in out.cells}
    assert out["extra"] == "future" and out.nbformat_minor == 99
    assert cells["future-10"] == {
        "id": "future-10",
        "cell_type": "future cell",
        "metadata": {},
        "key": "value",
        "source": "typed",
    }
    assert cells["future-1"]["extra"] == 5 and cells["future-4"]["future"] == "yes"
    assert cells["future-3"]["source"].startswith("# ")


def test_kept_fields_need_a_newer_minor_and_never_stand_in_for_modelled_ones(tmp_path):
    with Store.open(tmp_path / "nb.anode", create=True) as store:
        store.push([e("NotebookInitialized", title="t"), cell("c1", "1")], ALICE)
        future = {"output_type": "future", "x": 1}
        for bad in (
            e("FieldsKept", cell_id=None, fields={"extra": 1}),
            e(
                "CellOutputsSet",
                cell_id="c1",
                outputs=[{"output_type": "anode.kept", "output": future}],
            ),
        ):
            with pytest.raises(Refused, match=r"nbformat 4\.5"):
                store.push([bad], ALICE)
    with Store.open(tmp_path / "nb99.anode", create=True) as store:
        store.push([e("NotebookInitialized", title="t", nbformat_minor=99), cell("c1", "1")], ALICE)
        for bad, why in (
            (e("FieldsKept", cell_id=None, fields={"cells": []}), "cells: modelled"),
            (e("FieldsKept", cell_id="c1", fields={"outputs": []}), "outputs: modelled"),
            (
                e("FieldsKept", cell_id="c1", fields={"cell_type": "future"}),
                "unknown type is a raw",
            ),
            (e("FieldsKept", cell_id="c1", fields={"cell_type": "markdown"}), "does not name"),
        ):
            with pytest.raises(Refused, match=why):
                store.push([bad], ALICE)
        kept = {"output_type": "stream", "name": "stdout", "text": 3, "extra": 1}
        with pytest.raises(Refused, match="kept stream output"):
            store.push(
                [
                    e(
                        "CellOutputsSet",
                        cell_id="c1",
                        outputs=[{"output_type": "anode.kept", "output": kept}],
                    )
                ],
                ALICE,
            )
        # A cell of the future given a type Anode knows is of that type from then on.
        store.push(
            [
                cell("c2", "", "W", "raw"),
                e("FieldsKept", cell_id="c2", fields={"cell_type": "future", "k": 1}),
                e("CellTypeChanged", cell_id="c2", cell_type="markdown"),
            ],
            ALICE,
        )
        c2 = export_notebook(store.state).cells[1]
        assert c2["cell_type"] == "markdown" and c2["k"] == 1

import json
from pathlib import Path

import nbformat
import pytest

from anode_ext.cli import import_notebook
from anode_ext.log import Store
from anode_ext.log.ipynb import NotebookFormatError, export_notebook, import_events

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

"""The one invariant of the notebook document: it says what the tables say."""

from __future__ import annotations

from typing import Any

from anode_ext.log import Store
from anode_ext.log.document import from_y


def tables_view(store: Store) -> list[dict[str, Any]]:
    state = store.state
    out = []
    for row in state.ordered_cells():
        cell: dict[str, Any] = {
            "id": row.id,
            "cell_type": row.cell_type,
            "source": row.source,
            "metadata": row.metadata,
        }
        if row.cell_type == "code":
            cell["outputs"] = state.outputs_of(row)
        out.append(cell)
    return out


def doc_view(store: Store) -> list[dict[str, Any]]:
    assert store.document is not None
    out = []
    for c in store.document.cells:
        cell = from_y(c.to_py())
        keep = {"id", "cell_type", "source", "metadata"}
        if cell["cell_type"] == "code":
            keep.add("outputs")
        out.append({k: v for k, v in cell.items() if k in keep})
    return out


def assert_agree(store: Store) -> None:
    """The document matches the tables, and the log's updates rebuild it exactly."""
    doc, tab = doc_view(store), tables_view(store)
    assert doc == tab, [(d, t) for d, t in zip(doc, tab, strict=False) if d != t] or (doc, tab)
    assert store.document is not None
    assert store.replay_document().notebook() == store.document.notebook()

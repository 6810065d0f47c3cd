"""The notebook document: the log's cells in JupyterLab's shared-model layout.

JupyterLab renders a notebook from a Yjs document (`@jupyter/ydoc`'s
YNotebook: `cells`, an array of maps with a `source` text, `metadata`,
`outputs`, `execution_count`, `execution_state`; `meta`; `state`). A store
that serves browsers keeps one beside its tables, and both come from the same
log: every event that changes the document carries the Yjs update that makes
it (`v1.DocumentUpdated`, `v1.CellSourceEdited`), so applying the log's
updates in seq order rebuilds it, while the typed events fold into the tables
without it. Two functions keep the two equal at every append:

- `derive`: a client's update, applied, becomes the typed events that say
  what it changed (cells created, moved, deleted, sources, types, metadata);
- `project`: what typed events from clients without a CRDT (REST, the CLI,
  runtimes) changed in the tables is written into the document, and the
  update that makes it is appended with them.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import catalogue as ev
from .state import CellRow, Dirty, State
from .yjs import crdt, decode_update, encode_update, from_y, same, set_text, to_y

if TYPE_CHECKING:
    from pycrdt import Array, Doc, Map

__all__ = ["NotebookDoc", "decode_update", "encode_update"]

# The server's own Yjs client id: fixed, so that replaying a log gives the same
# items (each append reloads the document first, so its clock only moves on).
SERVER_CLIENT_ID = 0x414E4F44
RUNNING = "running"
IDLE = "idle"
# What a browser may not write: runtimes own outputs and counts.
_RUNTIME_KEYS = ("outputs", "execution_count")


# --- the document ----------------------------------------------------------------------


class NotebookDoc:
    """One notebook's Yjs document, and the two directions that keep it equal to the tables."""

    def __init__(
        self, state: bytes | None = None, client_id: int | None = SERVER_CLIENT_ID
    ) -> None:
        y = crdt()
        self.doc: Doc[Any] = y.Doc() if client_id is None else y.Doc(client_id=client_id)
        if state:
            self.doc.apply_update(state)
        self.cells: Array[Any] = self.doc.get("cells", type=y.Array)
        self.meta: Map[Any] = self.doc.get("meta", type=y.Map)
        # What each cell's outputs were when last written here: comparing
        # against it is cheap (the strings are shared), reading Yjs is not.
        self._outputs: dict[str, list[dict[str, Any]]] = {}
        self._order: list[str] | None = None  # the cells' ids in order, while known
        # Cells a client's update left holding what the log does not keep
        # (`trusted`): the next projection writes them back as the tables say.
        self._stale: set[str] = set()
        # Who hears the changes of the update being applied (derive): subscribed
        # once here, as subscribing per update costs more than applying it.
        self.hearing: tuple[Callable[[list[Any]], None], Callable[[list[Any]], None]] | None = None
        self.cells.observe_deep(self._on_cells)
        self.meta.observe_deep(self._on_meta)

    def _on_cells(self, events: list[Any]) -> None:
        if self.hearing is not None:
            self.hearing[0](events)

    def _on_meta(self, events: list[Any]) -> None:
        if self.hearing is not None:
            self.hearing[1](events)

    @property
    def needs_projection(self) -> bool:
        """A client's update left what the log does not keep (`trusted`, a second copy)."""
        return bool(self._stale)

    def encode(self) -> bytes:
        return self.doc.get_update()

    def apply(self, update: bytes) -> None:
        """Apply an update; ValueError if it is not one."""
        self._order = None
        try:
            self.doc.apply_update(update)
        except Exception as err:  # pycrdt raises ValueError or RuntimeError by version
            raise ValueError(f"not a Yjs update: {err}") from None

    def ids(self) -> list[str]:
        return [str(c.get("id")) if isinstance(c, crdt().Map) else "" for c in self.cells]

    def notebook(self) -> dict[str, Any]:
        """The document as nbformat-like JSON (for tests and comparisons)."""
        cells = []
        for c in self.cells:
            cell = from_y(c.to_py())
            cell.pop("execution_state", None)
            cells.append(cell)
        return {"cells": cells, "meta": from_y(self.meta.to_py())}

    # -- tables -> document ------------------------------------------------------
    def project(self, state: State, dirty: Dirty | None = None) -> bytes:
        """Write what the tables say into the document (all of it, or what `dirty`
        touched); the update that did it, empty if nothing changed."""
        # The transaction's own update: a state vector would miss deletions.
        made: list[bytes] = []
        sub = self.doc.observe(lambda event: made.append(event.update))
        try:
            with self.doc.transaction():
                if dirty is None or dirty.notebook or not self.meta.get("metadata"):
                    self._project_meta(state)
                only = None if dirty is None else _touched_cells(state, dirty) | self._stale
                self._project_cells(state, only)
                self._stale.clear()
        finally:
            self.doc.unobserve(sub)
        return b"".join(made[-1:]) if made else b""

    def _project_meta(self, state: State) -> None:
        y = crdt()
        nb = state.t.notebook
        if self.meta.get("nbformat") != 4.0:
            self.meta["nbformat"] = 4.0
        if self.meta.get("nbformat_minor") != float(nb.nbformat_minor):
            self.meta["nbformat_minor"] = float(nb.nbformat_minor)
        meta = self.meta.get("metadata")
        if not isinstance(meta, y.Map):
            self.meta["metadata"] = y.Map(to_y(nb.metadata))
            return
        _sync_map(meta, nb.metadata)

    def _project_cells(self, state: State, only: set[str] | None) -> None:
        """Cells in the tables' order, and the content of those in `only` (None: all).
        A push touches a few cells: only those are looked at (found by bisection,
        since the document is in the tables' order but for them)."""
        order = self._order if self._order is not None else self.ids()
        if only is None or len(set(order)) != len(order):
            self._project_all(state)
            return
        rows = state.t.cells
        running = _running_cells(state)
        moving = set()
        index = {cid: i for i, cid in enumerate(order)}
        for cid in only:
            i = index.get(cid)
            if i is None:
                continue
            if cid not in rows or not _in_place(order, i, rows):
                moving.add(cid)
        shifted = bool(moving)
        for i in sorted((index[c] for c in moving), reverse=True):
            del self.cells[i]
            order.pop(i)
        for cid in sorted(only, key=lambda c: _key(rows, c) if c in rows else ("", c)):
            row = rows.get(cid)
            if row is None:
                self._outputs.pop(cid, None)
                continue
            if cid in moving or cid not in index:
                at = bisect.bisect_left(order, _key(rows, cid), key=lambda c: _key(rows, c))
                self.cells.insert(at, crdt().Map(self._cell_content(row, state, cid in running)))
                order.insert(at, cid)
                shifted = True
            else:
                at = order.index(cid) if shifted else index[cid]
                self._project_cell(self.cells[at], row, state, cid in running)
        self._order = order

    def _project_all(self, state: State) -> None:
        y = crdt()
        rows = state.ordered_cells()
        wanted = {c.id for c in rows}
        running = _running_cells(state)
        # Cells the tables no longer have, and second copies of one id, go.
        ids = self.ids()
        first: dict[str, int] = {}
        for i, cell_id in enumerate(ids):
            first.setdefault(cell_id, i)
        for i in range(len(ids) - 1, -1, -1):
            if ids[i] not in wanted or first[ids[i]] != i:
                del self.cells[i]
                if ids[i] not in wanted:
                    self._outputs.pop(ids[i], None)
        ids = self.ids()
        where = {cid: i for i, cid in enumerate(ids)}
        for i, row in enumerate(rows):
            if i < len(ids) and ids[i] == row.id:
                self._project_cell(self.cells[i], row, state, row.id in running)
                continue
            if where.get(row.id, -1) >= i:
                # Moved: Yjs has no move, so the cell is deleted and inserted anew
                # (as JupyterLab moves cells).
                j = ids.index(row.id, i)
                del self.cells[j]
                ids.pop(j)
            self.cells.insert(i, y.Map(self._cell_content(row, state, row.id in running)))
            ids.insert(i, row.id)
        self._order = ids

    def _cell_content(self, row: CellRow, state: State, running: bool) -> dict[str, Any]:
        y = crdt()
        cell: dict[str, Any] = {
            "id": row.id,
            "cell_type": row.cell_type,
            "source": y.Text(row.source),
            "metadata": y.Map(to_y(row.metadata)),
        }
        if row.cell_type == "code":
            outputs = state.outputs_of(row)
            cell["outputs"] = y.Array([_youtput(o) for o in outputs])
            cell["execution_count"] = None if running else _count(row.execution_count)
            cell["execution_state"] = RUNNING if running else IDLE
            self._outputs[row.id] = [dict(o) for o in outputs]
        elif row.attachments:
            cell["attachments"] = to_y(row.attachments)
        return cell

    def _project_cell(self, ycell: Map[Any], row: CellRow, state: State, running: bool) -> None:
        y = crdt()
        if ycell.get("cell_type") != row.cell_type:
            ycell["cell_type"] = row.cell_type
        text = ycell.get("source")
        if isinstance(text, y.Text):
            set_text(text, row.source)
        else:
            ycell["source"] = y.Text(row.source)
        meta = ycell.get("metadata")
        if isinstance(meta, y.Map):
            _sync_map(meta, row.metadata)
        else:
            ycell["metadata"] = y.Map(to_y(row.metadata))
        if row.cell_type != "code":
            for key in ("outputs", "execution_count", "execution_state"):
                if key in ycell:
                    del ycell[key]
            self._outputs.pop(row.id, None)
            return
        # No count while it runs: JupyterLab would set the cell idle on a count.
        count = None if running else _count(row.execution_count)
        if ycell.get("execution_count", "missing") != count:
            ycell["execution_count"] = count
        flag = RUNNING if running else IDLE
        if ycell.get("execution_state") != flag:
            ycell["execution_state"] = flag
        self._project_outputs(ycell, row, state.outputs_of(row))

    def _project_outputs(self, ycell: Map[Any], row: CellRow, new: list[dict[str, Any]]) -> None:
        y = crdt()
        youts = ycell.get("outputs")
        if not isinstance(youts, y.Array):
            youts = ycell["outputs"] = y.Array()
            self._outputs.pop(row.id, None)
        old = self._outputs.get(row.id)
        if old is None or len(old) != len(youts):
            old = [from_y(o.to_py()) if isinstance(o, y.Map) else o for o in youts]
        if old == new:
            self._outputs[row.id] = [dict(o) for o in new]
            return
        keep = 0
        while keep < min(len(old), len(new)) and old[keep] == new[keep]:
            keep += 1
        if keep < len(old) and keep < len(new) and _grows(old[keep], new[keep]):
            text = youts[keep]["text"]
            text.insert(len(text), new[keep]["text"][len(old[keep]["text"]) :])
            keep += 1
            if keep < len(youts):
                del youts[keep : len(youts)]
        elif keep < len(youts):
            del youts[keep : len(youts)]
        if keep < len(new):
            youts.extend([_youtput(o) for o in new[keep:]])
        self._outputs[row.id] = [dict(o) for o in new]

    # -- document -> tables ------------------------------------------------------------
    def derive(self, update: bytes, state: State, *, outputs: bool = False) -> list[ev.Event]:
        """Apply a client's update; the typed events it means (derive.py)."""
        from .derive import derive

        return derive(self, update, state, outputs=outputs)


def _grows(old: dict[str, Any], new: dict[str, Any]) -> bool:
    return (
        old.get("output_type") == new.get("output_type") == "stream"
        and old.get("name") == new.get("name")
        and isinstance(new.get("text"), str)
        and new["text"].startswith(old.get("text", ""))
    )


def _youtput(output: dict[str, Any]) -> Map[Any]:
    y = crdt()
    content = to_y(output)
    if output.get("output_type") == "stream":
        content["text"] = y.Text(str(output.get("text", "")))
    ymap: Map[Any] = y.Map(content)
    return ymap


def _sync_map(ymap: Map[Any], want: dict[str, Any]) -> None:
    for key in list(ymap.keys()):
        if key not in want:
            del ymap[key]
    for key, value in want.items():
        if key not in ymap or not same(ymap[key], value):
            ymap[key] = to_y(value)


def _count(count: int | None) -> float | None:
    return None if count is None else float(count)


def _running_cells(state: State) -> set[str]:
    """Cells with an execution queued or under way: JupyterLab shows them `[*]`."""
    t = state.t
    ids = list(state.pending) + [rt.holding for rt in t.runtimes.values() if rt.holding]
    return {c for x in ids if (c := t.executions[x].cell_id) is not None}


def _touched_cells(state: State, dirty: Dirty) -> set[str]:
    cells = set(dirty.cells)
    for x in dirty.executions:
        ex = state.t.executions.get(x)
        if ex is not None and ex.cell_id is not None:
            cells.add(ex.cell_id)
    for key in dirty.outputs:
        if key.startswith("cell:"):
            cells.add(key[5:])
        else:
            ex = state.t.executions.get(key)
            if ex is not None and ex.cell_id is not None:
                cells.add(ex.cell_id)
    return cells


def _key(rows: dict[str, CellRow], cell_id: str) -> tuple[str, str]:
    return (rows[cell_id].position, cell_id)


def _in_place(order: list[str], i: int, rows: dict[str, CellRow]) -> bool:
    """Whether the cell at `i` sorts between its neighbours (which are in place)."""
    key = _key(rows, order[i])
    before = order[i - 1] if i > 0 else None
    after = order[i + 1] if i + 1 < len(order) else None
    return (before is None or before not in rows or _key(rows, before) < key) and (
        after is None or after not in rows or key < _key(rows, after)
    )

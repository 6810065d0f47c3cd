"""A client's Yjs update, read as the typed events it means (document -> tables).

The server applies the update to the notebook document, then compares what
the update touched with the tables: cells created, deleted or moved (the
document's order is the truth, fractional positions follow it), sources,
types, metadata. A keystroke becomes one `CellSourceEdited` with a compact
delta; anything else, the typed events after the `DocumentUpdated` that
carries it. What runtimes own (outputs, execution counts) a client may only
clear, and `trusted` is never kept.
"""

from __future__ import annotations

import bisect
from collections import Counter
from typing import TYPE_CHECKING, Any

from . import catalogue as ev
from . import position
from .document import _RUNTIME_KEYS, NotebookDoc, _running_cells
from .state import CellRow, State
from .yjs import apply_delta, crdt, delta_to_chars, from_y, same

if TYPE_CHECKING:
    from pycrdt import Map


def derive(
    nd: NotebookDoc, update: bytes, state: State, *, outputs: bool = False
) -> list[ev.Event]:
    """Apply a client's update; the typed events that say what it changed in the
    tables. An update that only edits one cell's source gives one
    `CellSourceEdited` (its `update` left for the caller to fill). ValueError:
    not an update or not a notebook; PermissionError: it writes what belongs
    to runtimes (`outputs`: the sender may write them, as the file on disk may)."""
    keys: dict[int, set[str]] = {}
    texts: list[tuple[int, list[dict[str, Any]]]] = []
    flags = {"structure": False, "meta": False}
    inserted: set[int] = set()  # maps new in the array (a move inserts a copy)

    def on_cells(events: list[Any]) -> None:
        for e in events:
            path = list(e.path)
            if not path:
                flags["structure"] = True
                at = 0
                for op in e.delta:
                    if "insert" in op:
                        inserted.update(range(at, at + len(op["insert"])))
                        at += len(op["insert"])
                    elif "retain" in op:
                        at += int(op["retain"])
                continue
            touched = keys.setdefault(int(path[0]), set())
            if len(path) == 1:
                touched.update(getattr(e, "keys", None) or {"*"})
            else:
                touched.add(str(path[1]))
                if path[1:] == ["source"]:
                    texts.append((int(path[0]), list(e.delta)))

    def on_meta(events: list[Any]) -> None:
        flags["meta"] = True

    order = nd._order
    nd.hearing = (on_cells, on_meta)
    try:
        nd.apply(update)
    finally:
        nd.hearing = None
    if not flags["structure"]:
        nd._order = order  # the cells did not move
    events: list[ev.Event] = []
    if flags["meta"]:
        events.extend(_derive_meta(nd, state))
    ids = nd._order if nd._order is not None else nd.ids()
    nd._order = ids
    fresh: set[str] = set()
    if flags["structure"] or len(ids) != len(state.t.cells) or len(set(ids)) != len(ids):
        structure, fresh = _derive_structure(nd, state, ids)
        events.extend(structure)
        fresh |= {ids[i] for i in inserted if i < len(ids)}
    if (
        not events
        and len(keys) == 1
        and len(texts) == 1
        and next(iter(keys.values())) == {"source"}
    ):
        i, delta = texts[0]
        cell_id = ids[i] if i < len(ids) else ""
        row = state.t.cells.get(cell_id)
        if row is not None:
            # The tables hold the source as it was before the update. (An edit
            # of a copy that is gone, say a second copy of a cell, changes
            # nothing visible: then the general path below finds nothing.)
            chars = delta_to_chars(row.source, delta)
            if str(nd.cells[i].get("source")) == apply_delta(row.source, chars):
                return [ev.CellSourceEdited(cell_id=cell_id, update="", delta=chars)]
    seen: set[str] = set()
    for i, cell_id in enumerate(ids):
        row = state.t.cells.get(cell_id)
        if row is None or cell_id in seen:
            continue
        seen.add(cell_id)
        if cell_id in fresh:
            events.extend(_derive_cell(nd, nd.cells[i], row, state, None, outputs))
        elif i in keys:
            events.extend(_derive_cell(nd, nd.cells[i], row, state, keys[i], outputs))
    return events


def _cell_metadata(nd: NotebookDoc, cell_id: str, meta: Any) -> dict[str, Any]:
    """A cell's metadata as a client wrote it, less `trusted`: trust is each
    viewer's own choice (DESIGN.md, "Trust"), never shared through the log,
    so a collaborator cannot make everyone run the scripts of an output."""
    new: dict[str, Any] = from_y(meta.to_py()) if isinstance(meta, crdt().Map) else {}
    if new.pop("trusted", None) is not None:
        nd._stale.add(cell_id)
    return new


def _derive_meta(nd: NotebookDoc, state: State) -> list[ev.Event]:
    y = crdt()
    meta = nd.meta.get("metadata")
    new = from_y(meta.to_py()) if isinstance(meta, y.Map) else {}
    old = state.t.notebook.metadata
    return [
        ev.NotebookMetadataSet(key=k, value=new.get(k))
        for k in sorted(set(old) | set(new))
        if k not in new or k not in old or not same(old[k], new[k])
    ]


def _derive_structure(
    nd: NotebookDoc, state: State, ids: list[str]
) -> tuple[list[ev.Event], set[str]]:
    """Cells created, deleted and moved: the document's order is the truth,
    the fractional positions follow it. Also the cells that got a new
    position (their maps may be new: JupyterLab moves a cell by deleting
    and inserting a copy)."""
    y = crdt()
    if any(not i or i == "None" for i in ids):
        raise ValueError("every cell in the document needs a string 'id'")
    first: dict[str, int] = {}  # each id's first map: the one that counts
    for i, cell_id in enumerate(ids):
        first.setdefault(cell_id, i)
    order = list(first)
    rows = state.t.cells
    events: list[ev.Event] = [ev.CellDeleted(cell_id=c) for c in rows if c not in first]
    fixed = _fixed(order, rows)
    # The position of the next fixed cell after each place, found back to front.
    after: list[str | None] = [None] * len(order)
    nxt: str | None = None
    for k in range(len(order) - 1, -1, -1):
        after[k] = nxt
        if order[k] in fixed:
            nxt = rows[order[k]].position
    positions: dict[str, str] = {}
    prev: str | None = None
    for k, cell_id in enumerate(order):
        if cell_id in fixed:
            prev = rows[cell_id].position
            continue
        prev = positions[cell_id] = position.between(prev, after[k])
    for cell_id, pos in positions.items():
        nd._outputs.pop(cell_id, None)
        if cell_id in rows:
            events.append(ev.CellMoved(cell_id=cell_id, position=pos))
            continue
        ycell = nd.cells[first[cell_id]]
        cell_type = _cell_type(ycell, cell_id)
        meta = ycell.get("metadata")
        attachments = ycell.get("attachments")
        events.append(
            ev.CellCreated(
                cell_id=cell_id,
                cell_type=cell_type,
                source=str(ycell.get("source") or ""),
                position=pos,
                metadata=_cell_metadata(nd, cell_id, meta),
                attachments=from_y(attachments) if isinstance(attachments, dict) else None,
            )
        )
        if cell_type != "code":
            continue
        outputs = ycell.get("outputs")
        outs = from_y(outputs.to_py()) if isinstance(outputs, y.Array) else []
        count = ycell.get("execution_count")
        if outs or count is not None:
            # A pasted cell keeps the outputs it was copied with.
            events.append(_outputs_set(cell_id, outs, None if count is None else int(count)))
    # An id twice (two tabs inserted or moved the same cell at once): the
    # first map wins, the projection removes the others, and the tables
    # take what the winner holds.
    twice = {cell_id for cell_id, n in Counter(ids).items() if n > 1}
    nd._stale |= twice  # the projection removes the other copies
    return events, set(positions) | twice


def _derive_cell(
    nd: NotebookDoc,
    ycell: Map[Any],
    row: CellRow,
    state: State,
    keys: set[str] | None,
    outputs: bool,
) -> list[ev.Event]:
    """What changed in one existing cell (`keys`: the keys the update touched; None: all)."""
    y = crdt()

    def touched(*names: str) -> bool:
        return keys is None or "*" in keys or any(n in keys for n in names)

    out: list[ev.Event] = []
    cell_type = ycell.get("cell_type")
    if touched("cell_type") and cell_type != row.cell_type:
        cell_type = _cell_type(ycell, row.id)
        out.append(ev.CellTypeChanged(cell_id=row.id, cell_type=cell_type))
    if touched("source"):
        source = str(ycell.get("source") or "")
        if source != row.source:
            out.append(ev.CellSourceChanged(cell_id=row.id, source=source))
    if touched("metadata"):
        meta = ycell.get("metadata")
        new = _cell_metadata(nd, row.id, meta)
        for key in sorted(set(row.metadata) | set(new)):
            if key not in new or key not in row.metadata or not same(row.metadata[key], new[key]):
                out.append(ev.CellMetadataSet(cell_id=row.id, key=key, value=new.get(key)))
    if cell_type == "code" and touched(*_RUNTIME_KEYS):
        nd._outputs.pop(row.id, None)
        youts = ycell.get("outputs")
        current = from_y(youts.to_py()) if isinstance(youts, y.Array) else []
        count = ycell.get("execution_count")
        count = None if count is None else int(count)
        shown = None if row.id in _running_cells(state) else row.execution_count
        if current == state.outputs_of(row) and count == shown:
            return out
        if outputs:
            out.append(_outputs_set(row.id, current, count))
            return out
        if current or count is not None:
            raise PermissionError(
                f"cell {row.id!r}: outputs and execution counts are written by runtimes; "
                "a client may only clear them"
            )
        out.append(_outputs_set(row.id, [], None))
    return out


def _cell_type(ycell: Map[Any], cell_id: str) -> ev.CellType:
    cell_type = ycell.get("cell_type")
    if cell_type not in ("code", "markdown", "raw"):
        raise ValueError(f"cell {cell_id!r}: 'cell_type' must be code, markdown or raw")
    result: ev.CellType = cell_type
    return result


def _fixed(order: list[str], rows: dict[str, CellRow]) -> set[str]:
    """The longest run of existing cells already in order (strictly increasing
    positions): they keep their positions, every other cell gets a new one."""
    seq = [(rows[c].position, c) for c in order if c in rows]
    # Patience sorting for the longest strictly increasing subsequence of positions.
    tails: list[int] = []
    prev: list[int] = [-1] * len(seq)
    keys: list[str] = []
    for i, (pos, _) in enumerate(seq):
        k = bisect.bisect_left(keys, pos)
        if k == len(keys):
            keys.append(pos)
            tails.append(i)
        else:
            keys[k] = pos
            tails[k] = i
        prev[i] = tails[k - 1] if k > 0 else -1
    out: set[str] = set()
    i = tails[-1] if tails else -1
    while i >= 0:
        out.add(seq[i][1])
        i = prev[i]
    return out


def _outputs_set(cell_id: str, outputs: list[dict[str, Any]], count: int | None) -> ev.Event:
    """Outputs as the document shows them: a newer nbformat minor's kept as they are."""
    outs = [ev.file_output(o) for o in outputs]
    return ev.CellOutputsSet(cell_id=cell_id, outputs=outs, execution_count=count)

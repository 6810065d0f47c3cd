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

import base64
import binascii
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from . import catalogue as ev
from . import position
from .state import CellRow, Dirty, State

if TYPE_CHECKING:
    from pycrdt import Array, Doc, Map, Text

# The server's own Yjs client id: fixed, so that replaying a log gives the same
# items (each append reloads the document first, so its clock only moves on).
SERVER_CLIENT_ID = 0x414E4F44
RUNNING = "running"
IDLE = "idle"
# What a browser may not write: runtimes own outputs and counts.
_RUNTIME_KEYS = ("outputs", "execution_count")


def _y() -> Any:
    """pycrdt, imported by the first store that keeps a document: a kernel's
    private log never does, and does not pay for it (~0.17 s)."""
    import pycrdt

    return pycrdt


# --- updates as they travel --------------------------------------------------


def decode_update(update: str) -> bytes:
    """The update's bytes, or ValueError with a reason a person can act on."""
    try:
        raw = base64.b64decode(update, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("'update' must be a base64-encoded Yjs update") from None
    if not raw:
        raise ValueError("'update' is empty")
    return raw


def encode_update(update: bytes) -> str:
    return base64.b64encode(update).decode("ascii")


# --- JSON <-> Yjs values ---------------------------------------------------------


def to_y(value: Any) -> Any:
    """JSON for Yjs: numbers are doubles there (an int would reach JavaScript as a BigInt)."""
    if type(value) is int:
        return float(value)
    if isinstance(value, dict):
        return {k: to_y(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_y(v) for v in value]
    return value


def from_y(value: Any) -> Any:
    """Yjs values as JSON: doubles that are whole numbers are ints again (as jupyter_ydoc does)."""
    if type(value) is float and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: from_y(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_y(v) for v in value]
    return value


def _same(a: Any, b: Any) -> bool:
    return bool(from_y(a) == from_y(b))


# --- text edits --------------------------------------------------------------------


def set_text(text: Text, new: str) -> None:
    """Make a Y.Text equal `new` with the smallest edit (pycrdt indexes UTF-8 bytes)."""
    old = str(text)
    if old == new:
        return
    limit = min(len(old), len(new))
    start = 0
    while start < limit and old[start] == new[start]:
        start += 1
    end = 0
    while end < limit - start and old[-1 - end] == new[-1 - end]:
        end += 1
    at = len(old[:start].encode())
    gone = len(old[start : len(old) - end].encode())
    if gone:
        del text[at : at + gone]
    middle = new[start : len(new) - end]
    if middle:
        text.insert(at, middle)


def delta_to_chars(before: str, delta: list[dict[str, Any]]) -> list[int | str]:
    """A pycrdt text delta (UTF-8 byte counts) in the log's compact form: a
    positive int retains that many code points, a negative one deletes them, a
    string is inserted (a keystroke is `[9999, "x"]`, a few bytes in the log)."""
    raw = before.encode()
    out: list[int | str] = []
    at = 0
    for op in delta:
        if "retain" in op:
            n = int(op["retain"])
            out.append(len(raw[at : at + n].decode()))
            at += n
        elif "delete" in op:
            n = int(op["delete"])
            out.append(-len(raw[at : at + n].decode()))
            at += n
        elif "insert" in op and isinstance(op["insert"], str):
            out.append(op["insert"])
    return out


def apply_delta(source: str, delta: Iterable[int | str]) -> str:
    """A compact text delta (see `delta_to_chars`) applied to a string."""
    parts: list[str] = []
    at = 0
    for op in delta:
        if isinstance(op, str):
            parts.append(op)
            continue
        if isinstance(op, bool) or not isinstance(op, int) or op == 0:
            raise ValueError(f"not a delta operation: {op!r}")
        n = abs(op)
        if at + n > len(source):
            raise ValueError("the delta goes past the end of the source")
        if op > 0:
            parts.append(source[at : at + n])
        at += n
    parts.append(source[at:])
    return "".join(parts)


# --- the document ----------------------------------------------------------------------


class NotebookDoc:
    """One notebook's Yjs document, and the two directions that keep it equal to the tables."""

    def __init__(
        self, state: bytes | None = None, client_id: int | None = SERVER_CLIENT_ID
    ) -> None:
        y = _y()
        self.doc: Doc[Any] = y.Doc() if client_id is None else y.Doc(client_id=client_id)
        if state:
            self.doc.apply_update(state)
        self.cells: Array[Any] = self.doc.get("cells", type=y.Array)
        self.meta: Map[Any] = self.doc.get("meta", type=y.Map)
        self.state: Map[Any] = self.doc.get("state", type=y.Map)
        # What each cell's outputs were when last written here: comparing
        # against it is cheap (the strings are shared), reading Yjs is not.
        self._outputs: dict[str, list[dict[str, Any]]] = {}
        self._order: list[str] | None = None  # the cells' ids in order, while known
        # Cells a client's update left holding what the log does not keep
        # (`trusted`): the next projection writes them back as the tables say.
        self._stale: set[str] = set()

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
        return [str(c.get("id")) if isinstance(c, _y().Map) else "" for c in self.cells]

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
        y = _y()
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
                at = _bisect(order, rows, _key(rows, cid))
                self.cells.insert(at, _y().Map(self._cell_content(row, state, cid in running)))
                order.insert(at, cid)
                shifted = True
            else:
                at = order.index(cid) if shifted else index[cid]
                self._project_cell(self.cells[at], row, state, cid in running)
        self._order = order

    def _project_all(self, state: State) -> None:
        y = _y()
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
        y = _y()
        cell: dict[str, Any] = {
            "id": row.id,
            "cell_type": row.cell_type,
            "source": y.Text(row.source),
            "metadata": y.Map(to_y(row.metadata)),
        }
        if row.cell_type == "code":
            outputs = _outputs_of(state, row)
            cell["outputs"] = y.Array([_youtput(o) for o in outputs])
            cell["execution_count"] = None if running else _count(row.execution_count)
            cell["execution_state"] = RUNNING if running else IDLE
            self._outputs[row.id] = [dict(o) for o in outputs]
        elif row.attachments:
            cell["attachments"] = to_y(row.attachments)
        return cell

    def _project_cell(self, ycell: Map[Any], row: CellRow, state: State, running: bool) -> None:
        y = _y()
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
        self._project_outputs(ycell, row, _outputs_of(state, row))

    def _project_outputs(self, ycell: Map[Any], row: CellRow, new: list[dict[str, Any]]) -> None:
        y = _y()
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
        """Apply a client's update; the typed events that say what it changed in the
        tables. An update that only edits one cell's source gives one
        `CellSourceEdited` (its `update` left for the caller to fill). ValueError:
        not an update or not a notebook; PermissionError: it writes what belongs
        to runtimes (`outputs`: the sender may write them, as the file on disk may)."""
        self._may_write_outputs = outputs
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

        sub_cells = self.cells.observe_deep(on_cells)
        sub_meta = self.meta.observe_deep(on_meta)
        try:
            self.apply(update)
        finally:
            self.cells.unobserve(sub_cells)
            self.meta.unobserve(sub_meta)
        events: list[ev.Event] = []
        if flags["meta"]:
            events.extend(self._derive_meta(state))
        ids = self.ids()
        fresh: set[str] = set()
        if flags["structure"] or len(ids) != len(state.t.cells) or len(set(ids)) != len(ids):
            structure, fresh = self._derive_structure(state, ids)
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
                if str(self.cells[i].get("source")) == apply_delta(row.source, chars):
                    return [ev.CellSourceEdited(cell_id=cell_id, update="", delta=chars)]
        seen: set[str] = set()
        for i, cell_id in enumerate(ids):
            row = state.t.cells.get(cell_id)
            if row is None or cell_id in seen:
                continue
            seen.add(cell_id)
            if cell_id in fresh:
                events.extend(self._derive_cell(self.cells[i], row, state, None))
            elif i in keys:
                events.extend(self._derive_cell(self.cells[i], row, state, keys[i]))
        return events

    def _cell_metadata(self, cell_id: str, meta: Any) -> dict[str, Any]:
        """A cell's metadata as a client wrote it, less `trusted`: trust is each
        viewer's own choice (DESIGN.md, "Trust"), never shared through the log,
        so a collaborator cannot make everyone run the scripts of an output."""
        new: dict[str, Any] = from_y(meta.to_py()) if isinstance(meta, _y().Map) else {}
        if new.pop("trusted", None) is not None:
            self._stale.add(cell_id)
        return new

    def _derive_meta(self, state: State) -> list[ev.Event]:
        y = _y()
        meta = self.meta.get("metadata")
        new = from_y(meta.to_py()) if isinstance(meta, y.Map) else {}
        old = state.t.notebook.metadata
        return [
            ev.NotebookMetadataSet(key=k, value=new.get(k))
            for k in sorted(set(old) | set(new))
            if k not in new or k not in old or not _same(old[k], new[k])
        ]

    def _derive_structure(self, state: State, ids: list[str]) -> tuple[list[ev.Event], set[str]]:
        """Cells created, deleted and moved: the document's order is the truth,
        the fractional positions follow it. Also the cells that got a new
        position (their maps may be new: JupyterLab moves a cell by deleting
        and inserting a copy)."""
        y = _y()
        if any(not i or i == "None" for i in ids):
            raise ValueError("every cell in the document needs a string 'id'")
        order = list(dict.fromkeys(ids))
        rows = state.t.cells
        events: list[ev.Event] = [ev.CellDeleted(cell_id=c) for c in rows if c not in order]
        fixed = _fixed(order, rows)
        positions: dict[str, str] = {}
        prev: str | None = None
        for k, cell_id in enumerate(order):
            if cell_id in fixed:
                prev = rows[cell_id].position
                continue
            nxt = next((rows[c].position for c in order[k + 1 :] if c in fixed), None)
            prev = positions[cell_id] = position.between(prev, nxt)
        for cell_id, pos in positions.items():
            self._outputs.pop(cell_id, None)
            if cell_id in rows:
                events.append(ev.CellMoved(cell_id=cell_id, position=pos))
                continue
            ycell = self.cells[ids.index(cell_id)]
            cell_type = ycell.get("cell_type")
            if cell_type not in ("code", "markdown", "raw"):
                raise ValueError(f"cell {cell_id!r}: 'cell_type' must be code, markdown or raw")
            meta = ycell.get("metadata")
            attachments = ycell.get("attachments")
            events.append(
                ev.CellCreated(
                    cell_id=cell_id,
                    cell_type=cell_type,
                    source=str(ycell.get("source") or ""),
                    position=pos,
                    metadata=self._cell_metadata(cell_id, meta),
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
        twice = {i for i in order if ids.count(i) > 1}
        return events, set(positions) | twice

    def _derive_cell(
        self, ycell: Map[Any], row: CellRow, state: State, keys: set[str] | None
    ) -> list[ev.Event]:
        """What changed in one existing cell (`keys`: the keys the update touched; None: all)."""
        y = _y()

        def touched(*names: str) -> bool:
            return keys is None or "*" in keys or any(n in keys for n in names)

        out: list[ev.Event] = []
        cell_type = ycell.get("cell_type")
        if touched("cell_type") and cell_type != row.cell_type:
            if cell_type not in ("code", "markdown", "raw"):
                raise ValueError(f"cell {row.id!r}: 'cell_type' must be code, markdown or raw")
            out.append(ev.CellTypeChanged(cell_id=row.id, cell_type=cell_type))
        if touched("source"):
            source = str(ycell.get("source") or "")
            if source != row.source:
                out.append(ev.CellSourceChanged(cell_id=row.id, source=source))
        if touched("metadata"):
            meta = ycell.get("metadata")
            new = self._cell_metadata(row.id, meta)
            for key in sorted(set(row.metadata) | set(new)):
                if (
                    key not in new
                    or key not in row.metadata
                    or not _same(row.metadata[key], new[key])
                ):
                    out.append(ev.CellMetadataSet(cell_id=row.id, key=key, value=new.get(key)))
        if cell_type == "code" and touched(*_RUNTIME_KEYS):
            self._outputs.pop(row.id, None)
            youts = ycell.get("outputs")
            current = from_y(youts.to_py()) if isinstance(youts, y.Array) else []
            count = ycell.get("execution_count")
            count = None if count is None else int(count)
            shown = None if row.id in _running_cells(state) else row.execution_count
            if current == _outputs_of(state, row) and count == shown:
                return out
            if getattr(self, "_may_write_outputs", False):
                out.append(_outputs_set(row.id, current, count))
                return out
            if current or count is not None:
                raise PermissionError(
                    f"cell {row.id!r}: outputs and execution counts are written by runtimes; "
                    "a client may only clear them"
                )
            out.append(_outputs_set(row.id, [], None))
        return out


def _fixed(order: list[str], rows: dict[str, CellRow]) -> set[str]:
    """The longest run of existing cells already in order (strictly increasing
    positions): they keep their positions, every other cell gets a new one."""
    seq = [(rows[c].position, c) for c in order if c in rows]
    # Patience sorting for the longest strictly increasing subsequence of positions.
    tails: list[int] = []
    prev: list[int] = [-1] * len(seq)
    import bisect

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
    import msgspec

    return msgspec.convert(
        {"cell_id": cell_id, "outputs": outputs, "execution_count": count}, ev.CellOutputsSet
    )


def _grows(old: dict[str, Any], new: dict[str, Any]) -> bool:
    return (
        old.get("output_type") == new.get("output_type") == "stream"
        and old.get("name") == new.get("name")
        and isinstance(new.get("text"), str)
        and new["text"].startswith(old.get("text", ""))
    )


def _youtput(output: dict[str, Any]) -> Map[Any]:
    y = _y()
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
        if key not in ymap or not _same(ymap[key], value):
            ymap[key] = to_y(value)


def _count(count: int | None) -> float | None:
    return None if count is None else float(count)


def _outputs_of(state: State, row: CellRow) -> list[dict[str, Any]]:
    if row.cell_type != "code" or row.outputs_key is None:
        return []
    lst = state.t.outputs.get(row.outputs_key)
    return lst.outputs if lst is not None else []


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


def _bisect(order: list[str], rows: dict[str, CellRow], key: tuple[str, str]) -> int:
    lo, hi = 0, len(order)
    while lo < hi:
        mid = (lo + hi) // 2
        if _key(rows, order[mid]) < key:
            lo = mid + 1
        else:
            hi = mid
    return lo

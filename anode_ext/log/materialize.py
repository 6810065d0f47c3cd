"""Folding: each event's effect on the tables.

`Batch` wraps a `State` for one push: it remembers every row before its first
change (so a refused or failed push is undone exactly) and which rows changed
(so the store rewrites only those). Replaying a log from zero through the same
functions gives the tables the store kept incrementally.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

import msgspec

from . import catalogue as ev
from .envelope import Envelope
from .state import (
    ASSIGNED,
    CANCELLED,
    COMPLETED,
    EXECUTING,
    FAILED,
    PENDING,
    CellRow,
    CommRow,
    Dirty,
    ExecutionRow,
    InputRow,
    NotebookRow,
    OutputList,
    RuntimeRow,
    State,
)
from .yjs import apply_delta

_ENC = msgspec.msgpack.Encoder()
_DEC: dict[type[Any], msgspec.msgpack.Decoder[Any]] = {}


def _clone(row: Any) -> Any:
    if row is None:
        return None
    dec = _DEC.get(type(row))
    if dec is None:
        dec = _DEC[type(row)] = msgspec.msgpack.Decoder(type(row))
    return dec.decode(_ENC.encode(row))


class Batch:
    """One push's changes to a state, undoable until committed."""

    def __init__(self, state: State, *, undo: bool = True) -> None:
        self.state = state
        self.undo = undo
        self.t = state.t
        self.dirty = Dirty()
        self._saved: dict[tuple[str, str], Any] = {}
        self._saved_head = (state.t.head, state.t.last_at)
        self._notebook: NotebookRow | None = None
        # The index of pending executions as it was (small: what waits to run).
        self._pending = dict(state.pending) if undo else None

    # -- remembering rows before their first change --------------------------
    def _touch(self, table: str, key: str) -> Any:
        rows: dict[str, Any] = getattr(self.t, table)
        row = rows.get(key)
        if self.undo and (table, key) not in self._saved:
            self._saved[(table, key)] = _clone(row)
        getattr(self.dirty, table).add(key)
        return row

    def cell(self, cell_id: str) -> CellRow:
        row: CellRow = self._touch("cells", cell_id)
        return row

    def execution(self, execution_id: str) -> ExecutionRow:
        row: ExecutionRow = self._touch("executions", execution_id)
        return row

    def runtime(self, session_id: str) -> RuntimeRow:
        row: RuntimeRow = self._touch("runtimes", session_id)
        return row

    def comm(self, comm_id: str) -> CommRow:
        row: CommRow = self._touch("comms", comm_id)
        return row

    def outputs(self, key: str) -> OutputList:
        row = self._touch("outputs", key)
        if row is None:
            row = self.t.outputs[key] = OutputList()
        out: OutputList = row
        return out

    def notebook(self) -> NotebookRow:
        if self._notebook is None and self.undo:
            self._notebook = _clone(self.t.notebook)
        self.dirty.notebook = True
        return self.t.notebook

    def put(self, table: str, key: str, row: Any) -> None:
        self._touch(table, key)
        getattr(self.t, table)[key] = row

    def drop(self, table: str, key: str) -> None:
        self._touch(table, key)
        getattr(self.t, table).pop(key, None)

    def displays(self, display_id: str) -> list[str]:
        if self.undo and ("displays", display_id) not in self._saved:
            old = self.t.displays.get(display_id)
            self._saved[("displays", display_id)] = None if old is None else list(old)
        return self.t.displays.setdefault(display_id, [])

    def pending_changed(self) -> None:
        """An execution went back to pending: rebuild the order now (rare)."""
        self.state.reindex()

    # -- ending the batch ----------------------------------------------------
    def commit(self) -> Dirty:
        """Keep the changes; what they touched, for writing."""
        return self.dirty

    def rollback(self) -> None:
        """Put every touched row back as it was before the batch."""
        for (table, key), row in self._saved.items():
            rows = getattr(self.t, table)
            if row is None:
                rows.pop(key, None)
            else:
                rows[key] = row
        if self._notebook is not None:
            self.t.notebook = self._notebook
        self.t.head, self.t.last_at = self._saved_head
        if self._pending is not None:
            self.state.pending = self._pending
        else:
            self.state.reindex()

    def set_aside(self) -> Callable[[], None]:
        """Undo the batch for now; the function returned puts it back as it was
        (a store that must not show a push before its commit, and has it folded)."""
        t = self.t
        after = {(table, key): getattr(t, table).get(key) for table, key in self._saved}
        notebook = t.notebook if self._notebook is not None else None
        head, pending = (t.head, t.last_at), self.state.pending
        self.rollback()

        def put_back() -> None:
            for (table, key), row in after.items():
                rows = getattr(t, table)
                if row is None:
                    rows.pop(key, None)
                else:
                    rows[key] = row
            if notebook is not None:
                t.notebook = notebook
            t.head, t.last_at = head
            self.state.pending = pending

        return put_back


def fold_all(state: State, envelopes: Iterable[Envelope]) -> State:
    """Committed events folded into `state`, in order (replays and catch-ups)."""
    batch = Batch(state, undo=False)
    for env in envelopes:
        fold(batch, env)
    batch.commit()
    return state


def fold(batch: Batch, env: Envelope) -> None:
    """Apply one appended event (already checked) to the batch's state."""
    handler = _FOLD.get(type(env.args))
    if handler is not None:
        handler(batch, env.args, env)
    if type(env.args) in _COMM_EVENTS:
        batch.state.comm_seq = env.seq  # not undone: a hint may be too high
    batch.t.head = env.seq
    batch.t.last_at = env.at


# --- notebook and cells ----------------------------------------------------


def _initialized(b: Batch, e: ev.NotebookInitialized, env: Envelope) -> None:
    nb = b.notebook()
    nb.title = e.title
    nb.nbformat_minor = e.nbformat_minor
    nb.initialized = True


def _without(metadata: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    """Metadata with `key` set, or removed when `value` is null (nbformat has no null metadata
    values that matter, and a document edit that deletes a key says so)."""
    out = {k: v for k, v in metadata.items() if k != key}
    if value is not None:
        out[key] = value
    return out


def _metadata_set(b: Batch, e: ev.NotebookMetadataSet, env: Envelope) -> None:
    nb = b.notebook()
    nb.metadata = _without(nb.metadata, e.key, e.value)
    if e.key == "title" and isinstance(e.value, str):
        nb.title = e.value


def _cell_created(b: Batch, e: ev.CellCreated, env: Envelope) -> None:
    row = CellRow(
        id=e.cell_id,
        cell_type=e.cell_type,
        source=e.source,
        position=e.position,
        metadata={k: v for k, v in e.metadata.items() if k != "trusted"},
        attachments=e.attachments,
    )
    b.put("cells", e.cell_id, row)


def _source_changed(b: Batch, e: ev.CellSourceChanged, env: Envelope) -> None:
    b.cell(e.cell_id).source = e.source


def _source_edited(b: Batch, e: ev.CellSourceEdited, env: Envelope) -> None:
    """The delta, not the Yjs update: the tables fold without the document."""
    cell = b.cell(e.cell_id)
    cell.source = apply_delta(cell.source, e.delta)


def _type_changed(b: Batch, e: ev.CellTypeChanged, env: Envelope) -> None:
    cell = b.cell(e.cell_id)
    if cell.cell_type != e.cell_type and e.cell_type != "code":
        cell.outputs_key = None
        cell.execution_count = None
    cell.cell_type = e.cell_type
    if "cell_type" in cell.kept:
        # The cell now has a type the catalogue names, not the unknown one it was read with.
        cell.kept = {k: v for k, v in cell.kept.items() if k != "cell_type"}


def _cell_metadata_set(b: Batch, e: ev.CellMetadataSet, env: Envelope) -> None:
    """`trusted` is each viewer's own choice: never kept (document.py says why)."""
    cell = b.cell(e.cell_id)
    cell.metadata = _without(cell.metadata, e.key, None if e.key == "trusted" else e.value)


def _moved(b: Batch, e: ev.CellMoved, env: Envelope) -> None:
    b.cell(e.cell_id).position = e.position


def _deleted(b: Batch, e: ev.CellDeleted, env: Envelope) -> None:
    b.drop("cells", e.cell_id)
    b.drop("outputs", f"cell:{e.cell_id}")


def _outputs_set(b: Batch, e: ev.CellOutputsSet, env: Envelope) -> None:
    """Outputs from a file are kept as written: no stream merging or overwrites applied."""
    cell = b.cell(e.cell_id)
    key = f"cell:{e.cell_id}"
    b.put("outputs", key, OutputList(outputs=[ev.output_json(o) for o in e.outputs]))
    cell.outputs_key = key
    cell.execution_count = e.execution_count


def _fields_kept(b: Batch, e: ev.FieldsKept, env: Envelope) -> None:
    if e.cell_id is None:
        b.notebook().kept = dict(e.fields)
    else:
        b.cell(e.cell_id).kept = dict(e.fields)


# --- outputs -----------------------------------------------------------------

_BACKSPACE = re.compile("[^\n\x08]\x08")


def fix_overwrites(text: str) -> str:
    """Apply `\\b` and `\\r` as Jupyter front ends do; a trailing `\\r` waits for more."""
    if "\b" in text:
        while True:
            fixed = _BACKSPACE.sub("", text)
            if fixed == text:
                break
            text = fixed
        text = text.replace("\b", "")
    if "\r" not in text:
        return text
    text = text.replace("\r\n", "\n")
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if "\r" in line.rstrip("\r"):
            tail = "\r" if line.endswith("\r") else ""
            lines[i] = line.rstrip("\r").rsplit("\r", 1)[-1] + tail
    return "\n".join(lines)


def _merge(prev: str, new: str) -> str:
    """Only the last line can be touched by a `\r` or `\b`: keep long streams linear."""
    if "\r" not in new and "\b" not in new and not prev.endswith("\r"):
        return prev + new
    cut = prev.rfind("\n") + 1
    return prev[:cut] + fix_overwrites(prev[cut:] + new)


def _append(b: Batch, key: str, output: dict[str, Any]) -> None:
    lst = b.outputs(key)
    if lst.clear_on_next:
        lst.outputs = []
        lst.clear_on_next = False
    last = lst.outputs[-1] if lst.outputs else None
    if (
        output["output_type"] == "stream"
        and last is not None
        and last["output_type"] == "stream"
        and last["name"] == output["name"]
    ):
        last["text"] = _merge(last["text"], output["text"])
        return
    if output["output_type"] == "stream" and ("\r" in output["text"] or "\b" in output["text"]):
        output = {**output, "text": fix_overwrites(output["text"])}
    lst.outputs.append(output)
    display_id = (output.get("transient") or {}).get("display_id")
    if isinstance(display_id, str):
        keys = b.displays(display_id)
        if key not in keys:
            keys.append(key)


def _output_appended(b: Batch, e: ev.OutputAppended, env: Envelope) -> None:
    _append(b, e.execution_id, msgspec.to_builtins(e.output))


def _display_updated(b: Batch, e: ev.DisplayUpdated, env: Envelope) -> None:
    for key in list(b.t.displays.get(e.display_id, ())):
        if key not in b.t.outputs:
            continue
        lst = b.outputs(key)
        for out in lst.outputs:
            if (out.get("transient") or {}).get("display_id") == e.display_id:
                out["data"] = dict(e.data)
                out["metadata"] = dict(e.metadata)


def _outputs_cleared(b: Batch, e: ev.OutputsCleared, env: Envelope) -> None:
    lst = b.outputs(e.execution_id)
    if e.wait:
        lst.clear_on_next = True
    else:
        lst.outputs = []
        lst.clear_on_next = False


# --- runtimes and the queue ----------------------------------------------------


def _session_started(b: Batch, e: ev.RuntimeSessionStarted, env: Envelope) -> None:
    row = RuntimeRow(e.session_id, "live", env.user, env.client_id, env.at, info=dict(e.info))
    b.put("runtimes", e.session_id, row)
    # A new interpreter: the widgets an ended one left (kept for export until now) are gone.
    for comm_id in [c.comm_id for c in b.t.comms.values() if not c.live]:
        b.drop("comms", comm_id)


def _session_ended(b: Batch, e: ev.RuntimeSessionEnded, env: Envelope) -> None:
    rt = b.runtime(e.session_id)
    rt.state = "ended"
    rt.reason = e.reason
    rt.ended_at = env.at
    for comm in list(b.t.comms.values()):
        if comm.session_id == e.session_id and comm.live:
            b.comm(comm.comm_id).live = False
    if rt.holding is not None:
        ex = b.execution(rt.holding)
        if ex.state == EXECUTING:
            _finish(b, ex, FAILED, env.at, reason=f"runtime session ended: {e.reason}")
        elif ex.state == ASSIGNED:
            ex.state = PENDING
            ex.session_id = None
            b.pending_changed()
        rt.holding = None


def _interrupt(b: Batch, e: ev.InterruptRequested, env: Envelope) -> None:
    b.runtime(e.session_id).interrupts += 1


def _restart(b: Batch, e: ev.RestartRequested, env: Envelope) -> None:
    b.runtime(e.session_id).restart_requested = True


def _requested(b: Batch, e: ev.ExecutionRequested, env: Envelope) -> None:
    row = ExecutionRow(
        id=e.execution_id,
        cell_id=e.cell_id,
        code=e.code,
        state=PENDING,
        requested_by=env.user,
        client_id=env.client_id,
        requested_at=env.at,
        order=env.seq,
        silent=e.silent,
        store_history=e.store_history,
        user_expressions=dict(e.user_expressions),
        allow_stdin=e.allow_stdin,
        stop_on_error=e.stop_on_error,
        batch=e.batch,
    )
    b.put("executions", e.execution_id, row)
    b.state.pending[e.execution_id] = None


def _assigned(b: Batch, e: ev.ExecutionAssigned, env: Envelope) -> None:
    ex = b.execution(e.execution_id)
    ex.state = ASSIGNED
    ex.session_id = e.session_id
    b.runtime(e.session_id).holding = ex.id
    b.state.pending.pop(ex.id, None)


def _started(b: Batch, e: ev.ExecutionStarted, env: Envelope) -> None:
    ex = b.execution(e.execution_id)
    ex.state = EXECUTING
    ex.execution_count = e.execution_count
    ex.started_at = env.at
    b.put("outputs", ex.id, OutputList())
    if ex.cell_id is not None and ex.cell_id in b.t.cells:
        cell = b.cell(ex.cell_id)
        cell.outputs_key = ex.id
        cell.execution_count = e.execution_count


def _finish(b: Batch, ex: ExecutionRow, state: str, at: int, **fields: Any) -> None:
    if ex.session_id is not None and ex.state in (ASSIGNED, EXECUTING):
        rt = b.runtime(ex.session_id)
        if rt.holding == ex.id:
            rt.holding = None
    if ex.state == PENDING:
        b.state.pending.pop(ex.id, None)
    waiting = b.t.inputs.get(ex.id)
    if waiting is not None and waiting.state == PENDING:
        b._touch("inputs", ex.id).state = "abandoned"  # nobody may answer it now
    ex.state = state
    ex.ended_at = at
    for name, value in fields.items():
        setattr(ex, name, value)
    req = b.t.inputs.get(ex.id)
    if req is not None and req.state == PENDING:
        b._touch("inputs", ex.id)
        req.state = "closed"


def _completed(b: Batch, e: ev.ExecutionCompleted, env: Envelope) -> None:
    ex = b.execution(e.execution_id)
    _finish(b, ex, COMPLETED, env.at, status=e.status, reply=dict(e.reply))
    if e.status == "error" and ex.stop_on_error and ex.batch is not None:
        # Stop on error is a queue rule: the rest of the batch does not run.
        for other in list(b.state.pending):
            row = b.t.executions[other]
            if row.batch == ex.batch:
                reason = "cancelled: an earlier cell of the same run failed"
                _finish(b, b.execution(other), CANCELLED, env.at, reason=reason)


def _cancelled(b: Batch, e: ev.ExecutionCancelled, env: Envelope) -> None:
    ex = b.execution(e.execution_id)
    _finish(b, ex, CANCELLED, env.at, reason=f"cancelled by {env.user}")


def _failed(b: Batch, e: ev.ExecutionFailed, env: Envelope) -> None:
    ex = b.execution(e.execution_id)
    _finish(b, ex, FAILED, env.at, reason=e.reason)


def _input_requested(b: Batch, e: ev.InputRequested, env: Envelope) -> None:
    b.put("inputs", e.execution_id, InputRow(e.execution_id, e.prompt, e.password, PENDING, env.at))


def _input_replied(b: Batch, e: ev.InputReplied, env: Envelope) -> None:
    req: InputRow = b._touch("inputs", e.execution_id)
    req.state = "answered"
    req.replied_by = env.user
    req.value = e.value


# --- comms -------------------------------------------------------------------

WIDGET_TARGET = "jupyter.widget"
_COMM_EVENTS = frozenset(ev.COMM_KINDS.values())
_UPDATES = frozenset(("update", "echo_update"))
_PATH_ENC = msgspec.json.Encoder()


def _widget_state(row: CommRow, data: dict[str, Any], buffers: list[str]) -> None:
    """A widget's state after an open or update (ipywidgets' protocol 2): its keys
    replaced, binary parts placed by their path."""
    state = data.get("state")
    if not isinstance(state, dict):
        return
    row.state = {**row.state, **state}
    kept = {
        path: buf for path, buf in row.buffers.items() if msgspec.json.decode(path)[0] not in state
    }
    paths = data.get("buffer_paths")
    for path, buf in zip(paths if isinstance(paths, list) else [], buffers, strict=False):
        if isinstance(path, list) and path:
            kept[_PATH_ENC.encode(path).decode()] = buf
    row.buffers = kept


def _comm_opened(b: Batch, e: ev.CommOpened, env: Envelope) -> None:
    row = CommRow(
        comm_id=e.comm_id,
        session_id=e.session_id,
        target_name=e.target_name,
        opened_by=env.user,
        opened_at=env.at,
        target_module=e.target_module,
    )
    if e.target_name == WIDGET_TARGET:
        _widget_state(row, e.data, e.buffers)
    b.put("comms", e.comm_id, row)


def _comm_message(b: Batch, e: ev.CommMessage, env: Envelope) -> None:
    row = b.t.comms[e.comm_id]
    if row.target_name == WIDGET_TARGET and e.data.get("method") in _UPDATES:
        _widget_state(b.comm(e.comm_id), e.data, e.buffers)


def _comm_closed(b: Batch, e: ev.CommClosed, env: Envelope) -> None:
    b.drop("comms", e.comm_id)


def _comms_delivered(b: Batch, e: ev.CommsDelivered, env: Envelope) -> None:
    b.runtime(e.session_id).comms_delivered = e.seq


_FOLD: dict[type[ev.Event], Callable[[Batch, Any, Envelope], None]] = {
    ev.NotebookInitialized: _initialized,
    ev.NotebookMetadataSet: _metadata_set,
    ev.CellCreated: _cell_created,
    ev.CellSourceChanged: _source_changed,
    ev.CellSourceEdited: _source_edited,
    ev.CellTypeChanged: _type_changed,
    ev.CellMetadataSet: _cell_metadata_set,
    ev.CellMoved: _moved,
    ev.CellDeleted: _deleted,
    ev.CellOutputsSet: _outputs_set,
    ev.FieldsKept: _fields_kept,
    ev.RuntimeSessionStarted: _session_started,
    ev.RuntimeSessionEnded: _session_ended,
    ev.InterruptRequested: _interrupt,
    ev.RestartRequested: _restart,
    ev.ExecutionRequested: _requested,
    ev.ExecutionAssigned: _assigned,
    ev.ExecutionStarted: _started,
    ev.OutputAppended: _output_appended,
    ev.DisplayUpdated: _display_updated,
    ev.OutputsCleared: _outputs_cleared,
    ev.InputRequested: _input_requested,
    ev.InputReplied: _input_replied,
    ev.ExecutionCompleted: _completed,
    ev.ExecutionCancelled: _cancelled,
    ev.ExecutionFailed: _failed,
    ev.CommOpened: _comm_opened,
    ev.CommMessage: _comm_message,
    ev.CommClosed: _comm_closed,
    ev.CommsDelivered: _comms_delivered,
}

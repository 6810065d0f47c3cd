"""What may be appended, given the state and who asks: the queue's state machine.

Checked on append, before anything is written, so a refused push leaves the
log as it was. Folding (materialize.py) may then assume every rule held.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import catalogue as ev
from . import document, position
from .errors import Refused
from .state import ASSIGNED, EXECUTING, HELD_STATES, PENDING, ExecutionRow, State

READ = "read"
WRITE = "write"
EXECUTE = "execute"
ADMIN = "admin"
USER_RIGHTS = frozenset({READ, WRITE, EXECUTE})
ALL_RIGHTS = USER_RIGHTS | {ADMIN}


@dataclass(frozen=True)
class Identity:
    """Who pushes: set by the server from its authentication, never by the client."""

    user: str
    client_id: str
    rights: frozenset[str] = USER_RIGHTS


class _Conflict(Exception):
    """A rule broken by the current state (HTTP 409)."""


class _Bad(Exception):
    """An event that is wrong whatever the state (HTTP 400)."""


def check(
    state: State, event: ev.Event, who: Identity, index: int, *, derived: bool = False
) -> None:
    """Raise `Refused` if `who` may not append `event` to `state`. `derived`: the
    server made it from `who`'s document update (rights still apply)."""
    needed = EXECUTE if event.right == "runtime" else event.right
    if needed not in who.rights and ADMIN not in who.rights:
        raise Refused(
            index, f"{event.name} needs the '{needed}' right, which {who.user!r} lacks", 403
        )
    rule = _RULES.get(type(event))
    if rule is None or (derived and type(event) is ev.CellSourceEdited):
        return
    try:
        rule(state, event, who)
    except _Conflict as err:
        raise Refused(index, f"{event.name}: {err}", 409) from None
    except _Bad as err:
        raise Refused(index, f"{event.name}: {err}", 400) from None
    except PermissionError as err:
        raise Refused(index, f"{event.name}: {err}", 403) from None


def _cell(state: State, cell_id: str) -> Any:
    cell = state.t.cells.get(cell_id)
    if cell is None:
        raise _Conflict(f"no cell {cell_id!r}")
    return cell


def _execution(state: State, execution_id: str) -> ExecutionRow:
    ex = state.t.executions.get(execution_id)
    if ex is None:
        raise _Conflict(f"no execution {execution_id!r}")
    return ex


def _holder(state: State, ex: ExecutionRow, who: Identity, *states: str) -> None:
    """Only the runtime session holding `ex`, in one of `states`, may act on it."""
    if ex.state not in states:
        raise _Conflict(f"execution {ex.id!r} is {ex.state}, not {' or '.join(states)}")
    _owner(state, ex.session_id or "", who)


def _owner(state: State, session_id: str, who: Identity) -> None:
    rt = state.t.runtimes.get(session_id)
    if rt is None:
        raise _Conflict(f"no runtime session {session_id!r}")
    if ADMIN in who.rights:
        return
    if (rt.user, rt.client_id) != (who.user, who.client_id):
        raise PermissionError(f"runtime session {session_id!r} belongs to another client")


def _position(pos: str) -> None:
    if not position.is_valid(pos):
        raise _Bad(f"position {pos!r} is not a fractional index (base-62, not ending in '0')")


def _notebook_initialized(state: State, e: ev.NotebookInitialized, who: Identity) -> None:
    if state.t.notebook.initialized:
        raise _Conflict("the notebook is already initialized")


def _cell_created(state: State, e: ev.CellCreated, who: Identity) -> None:
    if e.cell_id in state.t.cells:
        raise _Conflict(f"a cell {e.cell_id!r} exists already")
    if not e.cell_id:
        raise _Bad("'cell_id' is empty")
    _position(e.position)


def _cell_exists(state: State, e: Any, who: Identity) -> None:
    _cell(state, e.cell_id)


def _cell_moved(state: State, e: ev.CellMoved, who: Identity) -> None:
    _cell(state, e.cell_id)
    _position(e.position)


def _cell_source_edited(state: State, e: ev.CellSourceEdited, who: Identity) -> None:
    raise _Bad("written by the server from a client's document update; push v1.DocumentUpdated")


def _document_updated(state: State, e: ev.DocumentUpdated, who: Identity) -> None:
    """The bytes are checked here; what the update does, by the store that keeps the document."""
    try:
        document.decode_update(e.update)
    except ValueError as err:
        raise _Bad(str(err)) from None


def _cell_outputs_set(state: State, e: ev.CellOutputsSet, who: Identity) -> None:
    _cell(state, e.cell_id)
    if any(isinstance(o, ev.KeptOutput) for o in e.outputs):
        _newer_minor(state)


def _newer_minor(state: State) -> None:
    """nbformat allows what the catalogue does not name only in a newer minor."""
    minor = state.t.notebook.nbformat_minor
    if minor <= ev.NBFORMAT_MINOR:
        raise _Conflict(
            f"the notebook is nbformat 4.{minor}, which has no fields, cell or output "
            f"types beyond nbformat 4.{ev.NBFORMAT_MINOR}'s"
        )


def _fields_kept(state: State, e: ev.FieldsKept, who: Identity) -> None:
    """Kept fields never stand in for what the tables model: export would write them over it."""
    if e.cell_id is None:
        named = ev.NOTEBOOK_FIELDS
    else:
        cell = _cell(state, e.cell_id)
        named = ev.CELL_FIELDS.get(cell.cell_type, ev.UNKNOWN_CELL_FIELDS)
        if "cell_type" in e.fields:
            kind = e.fields["cell_type"]
            if not isinstance(kind, str) or kind in ev.CELL_TYPES:
                raise _Bad("a kept 'cell_type' is a type the catalogue does not name")
            if cell.cell_type != "raw":
                raise _Conflict(f"cell {e.cell_id!r}: a cell of an unknown type is a raw cell")
            named = ev.UNKNOWN_CELL_FIELDS
    clash = sorted(set(e.fields) & named)
    if clash:
        raise _Bad(f"{', '.join(clash)}: modelled by the tables, not kept")
    if e.fields:
        _newer_minor(state)


def _session_started(state: State, e: ev.RuntimeSessionStarted, who: Identity) -> None:
    if e.session_id in state.t.runtimes:
        raise _Conflict(f"runtime session {e.session_id!r} exists already")
    if not e.session_id:
        raise _Bad("'session_id' is empty")


def _session_ended(state: State, e: ev.RuntimeSessionEnded, who: Identity) -> None:
    if state.live_session(e.session_id) is None:
        raise _Conflict(f"runtime session {e.session_id!r} is not live")
    _owner(state, e.session_id, who)


def _session_request(state: State, e: Any, who: Identity) -> None:
    if state.live_session(e.session_id) is None:
        raise _Conflict(f"runtime session {e.session_id!r} is not live")


def _requested(state: State, e: ev.ExecutionRequested, who: Identity) -> None:
    if e.execution_id in state.t.executions:
        raise _Conflict(f"an execution {e.execution_id!r} exists already")
    if not e.execution_id:
        raise _Bad("'execution_id' is empty")
    if e.cell_id is not None:
        cell = _cell(state, e.cell_id)
        if cell.cell_type != "code":
            raise _Conflict(f"cell {e.cell_id!r} is a {cell.cell_type} cell, not code")


def _assigned(state: State, e: ev.ExecutionAssigned, who: Identity) -> None:
    ex = _execution(state, e.execution_id)
    if ex.state != PENDING:
        raise _Conflict(f"execution {ex.id!r} is {ex.state}; only a pending one can be claimed")
    rt = state.live_session(e.session_id)
    if rt is None:
        raise _Conflict(f"runtime session {e.session_id!r} is not live")
    _owner(state, e.session_id, who)
    if rt.holding is not None:
        raise _Conflict(f"runtime session {e.session_id!r} already holds {rt.holding!r}")
    first = state.first_pending()
    if first is not None and first != ex.id:
        raise _Conflict(f"{first!r} was requested earlier and is still pending")


def _started(state: State, e: ev.ExecutionStarted, who: Identity) -> None:
    _holder(state, _execution(state, e.execution_id), who, ASSIGNED)


def _running(state: State, e: Any, who: Identity) -> None:
    _holder(state, _execution(state, e.execution_id), who, EXECUTING)


def _display_updated(state: State, e: ev.DisplayUpdated, who: Identity) -> None:
    if e.execution_id is not None:
        _running(state, e, who)
    elif ADMIN not in who.rights and not any(
        rt.state == "live" and (rt.user, rt.client_id) == (who.user, who.client_id)
        for rt in state.t.runtimes.values()
    ):
        raise PermissionError("only a live runtime session may update displays")


def _input_requested(state: State, e: ev.InputRequested, who: Identity) -> None:
    _running(state, e, who)
    req = state.t.inputs.get(e.execution_id)
    if req is not None and req.state == PENDING:
        raise _Conflict(f"execution {e.execution_id!r} already waits for input")


def _input_replied(state: State, e: ev.InputReplied, who: Identity) -> None:
    req = state.t.inputs.get(e.execution_id)
    if req is None or req.state != PENDING:
        raise _Conflict(f"execution {e.execution_id!r} is not waiting for input")


def _completed(state: State, e: ev.ExecutionCompleted, who: Identity) -> None:
    ex = _execution(state, e.execution_id)
    if e.status == "aborted":
        _holder(state, ex, who, ASSIGNED, EXECUTING)
    else:
        _holder(state, ex, who, EXECUTING)


def _cancelled(state: State, e: ev.ExecutionCancelled, who: Identity) -> None:
    ex = _execution(state, e.execution_id)
    if ex.state not in (PENDING, ASSIGNED):
        raise _Conflict(
            f"execution {ex.id!r} is {ex.state}; only a pending or assigned one can be cancelled"
        )


def _failed(state: State, e: ev.ExecutionFailed, who: Identity) -> None:
    ex = _execution(state, e.execution_id)
    if ADMIN in who.rights and ex.state in (PENDING, *HELD_STATES):
        return
    _holder(state, ex, who, ASSIGNED, EXECUTING)


def _comm_sender(state: State, session_id: str, e: Any, who: Identity) -> None:
    """Python's side of a comm is its runtime session's alone; binary parts are base64."""
    if e.origin == "runtime":
        _owner(state, session_id, who)
    if e.execution_id is not None and e.execution_id not in state.t.executions:
        raise _Conflict(f"no execution {e.execution_id!r}")
    for i, buf in enumerate(e.buffers):
        try:
            base64.b64decode(buf, validate=True)
        except (binascii.Error, ValueError):
            raise _Bad(f"buffers[{i}] is not base64") from None


def _comm_opened(state: State, e: ev.CommOpened, who: Identity) -> None:
    if not e.comm_id:
        raise _Bad("'comm_id' is empty")
    row = state.t.comms.get(e.comm_id)
    if row is not None and row.live:
        raise _Conflict(f"a comm {e.comm_id!r} is open already")
    if state.live_session(e.session_id) is None:
        raise _Conflict(f"runtime session {e.session_id!r} is not live")
    _comm_sender(state, e.session_id, e, who)


def _comm_open(state: State, e: Any, who: Identity) -> None:
    """A message or close needs the comm open, in a live session."""
    row = state.t.comms.get(e.comm_id)
    if row is None:
        raise _Conflict(f"no open comm {e.comm_id!r}")
    if not row.live or state.live_session(row.session_id) is None:
        raise _Conflict(
            f"comm {e.comm_id!r} is closed: its runtime session {row.session_id!r} ended"
        )
    _comm_sender(state, row.session_id, e, who)


def _comms_delivered(state: State, e: ev.CommsDelivered, who: Identity) -> None:
    rt = state.live_session(e.session_id)
    if rt is None:
        raise _Conflict(f"runtime session {e.session_id!r} is not live")
    _owner(state, e.session_id, who)
    if not rt.comms_delivered <= e.seq <= state.t.head:
        raise _Bad(
            f"seq {e.seq} is not between the last delivered ({rt.comms_delivered}) "
            f"and the head ({state.t.head})"
        )


_RULES: dict[type[ev.Event], Callable[[State, Any, Identity], None]] = {
    ev.NotebookInitialized: _notebook_initialized,
    ev.CellCreated: _cell_created,
    ev.CellSourceChanged: _cell_exists,
    ev.CellSourceEdited: _cell_source_edited,
    ev.DocumentUpdated: _document_updated,
    ev.CellTypeChanged: _cell_exists,
    ev.CellMetadataSet: _cell_exists,
    ev.CellMoved: _cell_moved,
    ev.CellDeleted: _cell_exists,
    ev.CellOutputsSet: _cell_outputs_set,
    ev.FieldsKept: _fields_kept,
    ev.RuntimeSessionStarted: _session_started,
    ev.RuntimeSessionEnded: _session_ended,
    ev.InterruptRequested: _session_request,
    ev.RestartRequested: _session_request,
    ev.ExecutionRequested: _requested,
    ev.ExecutionAssigned: _assigned,
    ev.ExecutionStarted: _started,
    ev.OutputAppended: _running,
    ev.DisplayUpdated: _display_updated,
    ev.OutputsCleared: _running,
    ev.InputRequested: _input_requested,
    ev.InputReplied: _input_replied,
    ev.ExecutionCompleted: _completed,
    ev.ExecutionCancelled: _cancelled,
    ev.ExecutionFailed: _failed,
    ev.CommOpened: _comm_opened,
    ev.CommMessage: _comm_open,
    ev.CommClosed: _comm_open,
    ev.CommsDelivered: _comms_delivered,
}

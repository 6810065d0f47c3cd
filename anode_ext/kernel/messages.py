"""From the log's events to the Jupyter messages a front end expects.

Pure functions, no sockets: the kernel publishes what these return, so every
iopub message it sends is derived from an event in the log.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from typing import Any

import msgspec

from ..log import catalogue as ev
from ..log import position
from ..log.state import CellRow, ExecutionRow, State

Message = tuple[str, dict[str, Any]]  # (msg_type, content)


def iopub_for(event: ev.Event, execution_id: str, code: str) -> list[Message]:
    """The iopub messages for one event of the log, if it concerns `execution_id`."""
    if isinstance(event, ev.ExecutionStarted) and event.execution_id == execution_id:
        if event.execution_count is None:
            return []
        return [("execute_input", {"code": code, "execution_count": event.execution_count})]
    if isinstance(event, ev.OutputAppended) and event.execution_id == execution_id:
        return [_output_message(msgspec.to_builtins(event.output))]
    if isinstance(event, ev.DisplayUpdated) and event.execution_id == execution_id:
        content = {
            "data": event.data,
            "metadata": event.metadata,
            "transient": {"display_id": event.display_id},
        }
        return [("update_display_data", content)]
    if isinstance(event, ev.OutputsCleared) and event.execution_id == execution_id:
        return [("clear_output", {"wait": event.wait})]
    return []


def _output_message(out: dict[str, Any]) -> Message:
    kind = out.pop("output_type")
    if kind == "display_data":
        out.setdefault("transient", {})
    return kind, out


def failure_message(reason: str) -> Message:
    """An execution the runtime could not finish (it died, was restarted): shown as an error."""
    ename = "RuntimeDied" if "died" in reason else "ExecutionFailed"
    return "error", {"ename": ename, "evalue": reason, "traceback": [f"{ename}: {reason}"]}


def reply_for(row: ExecutionRow, error: dict[str, Any] | None, count: int) -> dict[str, Any]:
    """The `execute_reply` content for a finished execution."""
    if row.state == "cancelled":
        return {"status": "aborted", "execution_count": count}
    if row.state == "failed":
        assert error is not None
        return {"status": "error", "execution_count": count, **error}
    content: dict[str, Any] = {
        "status": row.status or "error",
        "execution_count": count,
        "user_expressions": row.reply.get("user_expressions", {}),
        "payload": row.reply.get("payload", []),
    }
    if content["status"] == "error":
        content["ename"] = row.reply.get("ename", "")
        content["evalue"] = row.reply.get("evalue", "")
        content["traceback"] = (error or {}).get("traceback", [])
    return content


# -- history ---------------------------------------------------------------------


def _session_numbers(state: State) -> dict[str, int]:
    """Runtime sessions numbered from 1 in the order they started (history's `session`)."""
    runtimes = state.t.runtimes
    return {
        sid: i + 1 for i, sid in enumerate(sorted(runtimes, key=lambda s: runtimes[s].started_at))
    }


def with_outputs(state: State, entries: list[tuple[int, int, str]]) -> list[Any]:
    """`output=True` history: (session, line, (source, its result's text/plain or None))."""
    sessions = _session_numbers(state)
    results: dict[tuple[int, int], Any] = {}
    for row in state.t.executions.values():
        out = state.t.outputs.get(row.id)
        if row.session_id not in sessions or row.execution_count is None or out is None:
            continue
        for o in out.outputs:
            if o.get("output_type") == "execute_result":
                key = (sessions[row.session_id], row.execution_count)
                results[key] = o.get("data", {}).get("text/plain")
    return [(s, n, (src, results.get((s, n)))) for s, n, src in entries]


def history_entries(state: State) -> list[tuple[int, int, str]]:
    """(session, line, source) of every stored execution, in request order.

    Lines are the execution counts that session gave.
    """
    sessions = _session_numbers(state)
    rows = sorted(state.t.executions.values(), key=lambda r: r.order)
    return [
        (sessions[r.session_id], r.execution_count, r.code)
        for r in rows
        if r.store_history
        and not r.silent
        and r.session_id in sessions
        and r.execution_count is not None
    ]


def history(entries: list[tuple[int, int, str]], content: dict[str, Any]) -> list[Any]:
    """Answer a `history_request` (tail, range, search) over `entries`."""
    kind = content.get("hist_access_type", "tail")
    n = content.get("n")
    if kind == "tail":
        return list(entries[-n:]) if n else list(entries)
    if kind == "range":
        session = int(content.get("session", 0) or 0)
        current = max((s for s, _, _ in entries), default=0)
        if session <= 0:
            session = current + session
        start, stop = int(content.get("start", 0) or 0), content.get("stop")
        return [
            e
            for e in entries
            if e[0] == session and e[1] >= start and (stop is None or e[1] < int(stop))
        ]
    if kind == "search":
        pattern = content.get("pattern", "*")
        found = [e for e in entries if fnmatch.fnmatchcase(e[2], pattern)]
        if content.get("unique"):
            found = _unique(found)
        return found[-n:] if n else found
    return []


def _unique(entries: Iterable[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    seen: dict[str, tuple[int, int, str]] = {}
    for e in entries:
        seen.pop(e[2], None)
        seen[e[2]] = e
    return list(seen.values())


def cell_events(cells: Mapping[str, CellRow], cell_id: str | None, code: str) -> list[ev.Event]:
    """What running `code` in JupyterLab's cell `cell_id` records in the document's
    log first: the cell (new, at the end) or its changed source."""
    if not cell_id:
        return []
    if cell_id not in cells:
        last = max((c.position for c in cells.values()), default=None)
        at = position.between(last, None)
        return [ev.CellCreated(cell_id=cell_id, cell_type="code", source=code, position=at)]
    cell = cells[cell_id]
    if cell.cell_type == "code" and cell.source != code:
        return [ev.CellSourceChanged(cell_id=cell_id, source=code)]
    return []


# -- comms -------------------------------------------------------------------------


def comm_message(event: ev.CommEvent) -> Message:
    """The iopub message for a comm event Python made (buffers travel apart)."""
    content: dict[str, Any] = {"comm_id": event.comm_id, "data": event.data}
    if isinstance(event, ev.CommOpened):
        content["target_name"] = event.target_name
        content["target_module"] = event.target_module
    return ev.comm_kind(event), content


def comm_event(
    msg_type: str, content: dict[str, Any], buffers: list[str], session_id: str
) -> ev.CommEvent:
    """A front end's shell comm message as the log's event (buffers as base64)."""
    return ev.comm_event(
        msg_type,
        session_id=session_id,
        target_name=str(content.get("target_name", "")),
        target_module=content.get("target_module"),
        comm_id=str(content.get("comm_id", "")),
        origin="client",
        data=dict(content.get("data") or {}),
        buffers=buffers,
    )


def comm_info(state: State, target_name: str | None) -> dict[str, dict[str, str]]:
    """`comm_info_reply`'s comms: those open in a live runtime session."""
    return {
        c.comm_id: {"target_name": c.target_name}
        for c in state.t.comms.values()
        if c.live and (not target_name or c.target_name == target_name)
    }

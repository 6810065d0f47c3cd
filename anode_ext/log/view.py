"""What a state looks like from outside: the pinned State JSON, and nbformat v4."""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from .catalogue import (
    CELL_FIELDS,
    NBFORMAT_MINOR,
    NOTEBOOK_FIELDS,
    UNKNOWN_CELL_FIELDS,
    json_schema,
)
from .materialize import WIDGET_TARGET
from .state import CellRow, State


def cell_outputs(state: State, cell: CellRow) -> list[dict[str, Any]]:
    """The cell's outputs as nbformat v4 dicts (transient keys are not saved)."""
    return [_saved_output(o) for o in state.outputs_of(cell)]


def _saved_output(output: dict[str, Any]) -> dict[str, Any]:
    if "transient" not in output:
        return output
    return {k: v for k, v in output.items() if k != "transient"}


class CellView(msgspec.Struct):
    id: str
    cell_type: str
    source: str
    metadata: dict[str, Any]
    execution_count: int | None
    outputs: list[dict[str, Any]]
    position: str


class ExecutionView(msgspec.Struct):
    id: str
    cell_id: str | None
    code: str
    state: Literal["pending", "assigned", "executing", "completed", "cancelled", "failed"]
    status: Literal["ok", "error", "aborted"] | None
    reason: str | None
    requested_by: str
    session_id: str | None
    execution_count: int | None
    requested_at: int
    started_at: int | None
    ended_at: int | None


class RuntimeView(msgspec.Struct):
    session_id: str
    state: Literal["live", "ended"]
    user: str
    started_at: int
    ended_at: int | None
    reason: str | None
    holding: str | None
    info: dict[str, Any]


class InputView(msgspec.Struct):
    execution_id: str
    prompt: str
    password: bool
    state: Literal["pending", "answered", "closed", "abandoned"]
    requested_at: int
    replied_by: str | None


class StateView(msgspec.Struct):
    """The State interface of DESIGN.md ("Interfaces we keep stable")."""

    id: str
    head: int
    title: str
    metadata: dict[str, Any]
    cells: list[CellView]
    executions: list[ExecutionView]
    runtimes: list[RuntimeView]
    input_requests: list[InputView]


def state_view(state: State, notebook_id: str = "") -> StateView:
    t = state.t
    cells = [
        CellView(
            c.id,
            c.cell_type,
            c.source,
            c.metadata,
            c.execution_count if c.cell_type == "code" else None,
            cell_outputs(state, c),
            c.position,
        )
        for c in state.ordered_cells()
    ]
    executions = [
        ExecutionView(
            e.id,
            e.cell_id,
            e.code,
            e.state,  # type: ignore[arg-type]
            e.status,  # type: ignore[arg-type]
            e.reason,
            e.requested_by,
            e.session_id,
            e.execution_count,
            e.requested_at,
            e.started_at,
            e.ended_at,
        )
        for e in sorted(t.executions.values(), key=lambda e: e.order)
    ]
    runtimes = [
        RuntimeView(
            r.session_id,
            r.state,  # type: ignore[arg-type]
            r.user,
            r.started_at,
            r.ended_at,
            r.reason,
            r.holding,
            r.info,
        )
        for r in t.runtimes.values()
    ]
    inputs = [
        InputView(
            i.execution_id,
            i.prompt,
            i.password,
            i.state,  # type: ignore[arg-type]
            i.requested_at,
            i.replied_by,
        )
        for i in t.inputs.values()
    ]
    return StateView(
        notebook_id,
        t.head,
        t.notebook.title,
        t.notebook.metadata,
        cells,
        executions,
        runtimes,
        inputs,
    )


def state_json(state: State, notebook_id: str = "") -> dict[str, Any]:
    """The state as plain JSON-ready builtins."""
    out: dict[str, Any] = msgspec.to_builtins(state_view(state, notebook_id))
    return out


def schema_document() -> dict[str, Any]:
    """The catalogue's JSON Schema plus the State view's: what TypeScript is generated from."""
    doc = json_schema()
    _, components = msgspec.json.schema_components([StateView], ref_template="#/$defs/{name}")
    doc["$defs"].update(components)
    doc["state"] = {"$ref": "#/$defs/StateView"}
    return doc


def to_notebook(state: State) -> dict[str, Any]:
    """An nbformat v4 notebook dict (validate with nbformat before writing), with the
    fields of a newer minor kept where they were read."""
    nb = state.t.notebook
    minor = max(nb.nbformat_minor, NBFORMAT_MINOR)
    cells = []
    for c in state.ordered_cells():
        cell: dict[str, Any] = {
            "id": c.id,
            "cell_type": c.cell_type,
            "metadata": c.metadata,
            "source": c.source,
        }
        if c.cell_type == "code":
            cell["execution_count"] = c.execution_count
            cell["outputs"] = cell_outputs(state, c)
        elif c.attachments is not None:
            cell["attachments"] = c.attachments
        cells.append(_with_kept(cell, c) if c.kept else cell)
    widgets = widget_state(state)
    out = {
        "nbformat": 4,
        "nbformat_minor": minor,
        "metadata": nb.metadata if widgets is None else {**nb.metadata, "widgets": widgets},
        "cells": cells,
    }
    return {**_unnamed(nb.kept, NOTEBOOK_FIELDS), **out}


WIDGET_STATE_MIME = "application/vnd.jupyter.widget-state+json"


def widget_state(state: State) -> dict[str, Any] | None:
    """The widgets' last state, as JupyterLab and nbclient save it in a notebook's
    metadata (`widgets`), so that a notebook viewer renders them without a kernel;
    None when the log holds no widget."""
    models: dict[str, Any] = {}
    for comm in state.t.comms.values():
        if comm.target_name != WIDGET_TARGET:
            continue
        st = comm.state
        model: dict[str, Any] = {
            "model_name": st.get("_model_name", ""),
            "model_module": st.get("_model_module", ""),
            "model_module_version": st.get("_model_module_version", ""),
            "state": st,
        }
        if comm.buffers:
            model["buffers"] = [
                {"encoding": "base64", "path": msgspec.json.decode(path), "data": data}
                for path, data in comm.buffers.items()
            ]
        models[comm.comm_id] = model
    if not models:
        return None
    return {WIDGET_STATE_MIME: {"version_major": 2, "version_minor": 0, "state": models}}


def _unnamed(kept: dict[str, Any], named: frozenset[str]) -> dict[str, Any]:
    return {k: v for k, v in kept.items() if k not in named}


def _with_kept(cell: dict[str, Any], row: CellRow) -> dict[str, Any]:
    """A cell with its kept fields; one of an unknown type (shown as raw) as it was
    read, but for its metadata and a source edited since."""
    if "cell_type" not in row.kept:
        return {**_unnamed(row.kept, CELL_FIELDS[row.cell_type]), **cell}
    out = {"id": row.id, "metadata": row.metadata, **_unnamed(row.kept, UNKNOWN_CELL_FIELDS)}
    if row.source != source_text(row.kept.get("source")):
        out["source"] = row.source
    return out


def source_text(source: Any) -> str:
    """A source as one string (nbformat's list of lines joined); "" if it is not text."""
    if isinstance(source, list) and all(isinstance(s, str) for s in source):
        return "".join(source)
    return source if isinstance(source, str) else ""

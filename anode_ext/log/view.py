"""What a state looks like from outside: the pinned State JSON, and nbformat v4."""

from __future__ import annotations

from typing import Any

from .state import CellRow, State


def cell_outputs(state: State, cell: CellRow) -> list[dict[str, Any]]:
    """The cell's outputs as nbformat v4 dicts (transient keys are not saved)."""
    if cell.outputs_key is None or cell.cell_type != "code":
        return []
    lst = state.t.outputs.get(cell.outputs_key)
    if lst is None:
        return []
    return [_saved_output(o) for o in lst.outputs]


def _saved_output(output: dict[str, Any]) -> dict[str, Any]:
    if "transient" not in output:
        return output
    return {k: v for k, v in output.items() if k != "transient"}


def state_json(state: State, notebook_id: str = "") -> dict[str, Any]:
    """The State interface of DESIGN.md ("Interfaces we keep stable")."""
    t = state.t
    cells = [
        {
            "id": c.id,
            "cell_type": c.cell_type,
            "source": c.source,
            "metadata": c.metadata,
            "execution_count": c.execution_count if c.cell_type == "code" else None,
            "outputs": cell_outputs(state, c),
            "position": c.position,
        }
        for c in state.ordered_cells()
    ]
    executions = [
        {
            "id": e.id,
            "cell_id": e.cell_id,
            "code": e.code,
            "state": e.state,
            "status": e.status,
            "reason": e.reason,
            "requested_by": e.requested_by,
            "session_id": e.session_id,
            "execution_count": e.execution_count,
            "requested_at": e.requested_at,
            "started_at": e.started_at,
            "ended_at": e.ended_at,
        }
        for e in sorted(t.executions.values(), key=lambda e: e.order)
    ]
    runtimes = [
        {
            "session_id": r.session_id,
            "state": r.state,
            "user": r.user,
            "started_at": r.started_at,
            "ended_at": r.ended_at,
            "reason": r.reason,
            "holding": r.holding,
            "info": r.info,
        }
        for r in t.runtimes.values()
    ]
    inputs = [
        {
            "execution_id": i.execution_id,
            "prompt": i.prompt,
            "password": i.password,
            "state": i.state,
            "requested_at": i.requested_at,
            "replied_by": i.replied_by,
        }
        for i in t.inputs.values()
    ]
    return {
        "id": notebook_id,
        "head": t.head,
        "title": t.notebook.title,
        "metadata": t.notebook.metadata,
        "cells": cells,
        "executions": executions,
        "runtimes": runtimes,
        "input_requests": inputs,
    }


def to_notebook(state: State) -> dict[str, Any]:
    """An nbformat v4 notebook dict (validate with nbformat before writing)."""
    minor = max(state.t.notebook.nbformat_minor, 5)
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
        cells.append(cell)
    return {
        "nbformat": 4,
        "nbformat_minor": minor,
        "metadata": state.t.notebook.metadata,
        "cells": cells,
    }

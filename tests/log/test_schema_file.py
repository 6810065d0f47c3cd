"""The JSON Schema the labextension's TypeScript types are generated from."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema

from anode_ext.log import Identity, Store
from anode_ext.log import catalogue as ev
from anode_ext.log.view import schema_document, state_json

SCHEMA = Path(__file__).parents[2] / "labextension" / "schema" / "anode.json"


def test_the_committed_schema_is_the_catalogues() -> None:
    """Regenerate with `anode schema > labextension/schema/anode.json`."""
    assert json.loads(SCHEMA.read_text()) == json.loads(json.dumps(schema_document()))


def test_a_real_state_matches_the_state_schema(store: Store) -> None:
    doc = schema_document()
    who = Identity("alice", "c1", frozenset({"read", "write", "execute"}))
    events = [
        ev.NotebookInitialized(title="t"),
        ev.CellCreated(cell_id="a", cell_type="code", source="1", position="a1"),
        ev.ExecutionRequested(execution_id="x", cell_id="a", code="1"),
        ev.RuntimeSessionStarted(session_id="s"),
        ev.ExecutionAssigned(execution_id="x", session_id="s"),
        ev.ExecutionStarted(execution_id="x", execution_count=1),
        ev.InputRequested(execution_id="x", prompt="?"),
        ev.ExecutionCompleted(execution_id="x", status="ok"),
        ev.RuntimeSessionEnded(session_id="s", reason="done"),
    ]
    for i, e in enumerate(events):
        store.append([(f"id{i}", e)], who)
    state = state_json(store.state, "nb")
    schema = {"$defs": doc["$defs"], **doc["state"]}
    jsonschema.validate(state, schema)
    assert state["executions"][0]["state"] == "completed"
    assert state["input_requests"][0]["state"] == "abandoned"

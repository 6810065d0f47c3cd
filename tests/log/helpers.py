"""Small builders for log tests: pushes as the wire carries them."""

from __future__ import annotations

import uuid
from typing import Any

from anode_ext.log import Identity, Store

ALICE = Identity("alice", "client-a")
BOB = Identity("bob", "client-b")
RUNTIME = Identity("alice", "runtime-1")


def e(name: str, **args: Any) -> dict[str, Any]:
    return {"id": uuid.uuid4().hex, "name": f"v1.{name}", "args": args}


def cell(
    cell_id: str, source: str = "", position: str = "V", cell_type: str = "code"
) -> dict[str, Any]:
    return e("CellCreated", cell_id=cell_id, cell_type=cell_type, source=source, position=position)


def stream(execution_id: str, text: str, name: str = "stdout") -> dict[str, Any]:
    return e(
        "OutputAppended",
        execution_id=execution_id,
        output={"output_type": "stream", "name": name, "text": text},
    )


def start_session(store: Store, session_id: str = "s1", who: Identity = RUNTIME) -> None:
    store.push([e("RuntimeSessionStarted", session_id=session_id)], who)


def run(
    store: Store,
    execution_id: str,
    cell_id: str | None = "c1",
    session_id: str = "s1",
    who: Identity = RUNTIME,
    count: int = 1,
) -> None:
    """Request, claim and start an execution (left executing)."""
    store.push(
        [e("ExecutionRequested", execution_id=execution_id, cell_id=cell_id, code="x")], ALICE
    )
    store.push(
        [
            e("ExecutionAssigned", execution_id=execution_id, session_id=session_id),
            e("ExecutionStarted", execution_id=execution_id, execution_count=count),
        ],
        who,
    )


def log_bytes(store: Store) -> list[bytes]:
    return store.events_json()

"""The tables that folding a log gives, held in memory as typed rows.

Rows are msgspec Structs so a whole state encodes to one blob (checkpoints)
and compares field by field (replay == incremental). The notebook's Yjs
document is not part of them: it folds from the log's updates (document.py).
"""

from __future__ import annotations

from typing import Any

import msgspec

PENDING = "pending"
ASSIGNED = "assigned"
EXECUTING = "executing"
COMPLETED = "completed"
CANCELLED = "cancelled"
FAILED = "failed"
FINAL_STATES = frozenset({COMPLETED, CANCELLED, FAILED})
# anode_ext.kernel.KERNEL_NAME, which the log does not import (a test keeps them equal).
ANODE_KERNEL = "anode-pyodide"
HELD_STATES = frozenset({ASSIGNED, EXECUTING})


class NotebookRow(msgspec.Struct):
    title: str = ""
    metadata: dict[str, Any] = {}
    nbformat_minor: int = 5
    initialized: bool = False
    kept: dict[str, Any] = {}  # top-level keys of a newer nbformat minor (FieldsKept)


class CellRow(msgspec.Struct):
    id: str
    cell_type: str
    source: str
    position: str
    metadata: dict[str, Any] = {}
    attachments: dict[str, Any] | None = None
    execution_count: int | None = None
    outputs_key: str | None = None
    kept: dict[str, Any] = {}  # fields of a newer nbformat minor (FieldsKept)


class ExecutionRow(msgspec.Struct):
    id: str
    cell_id: str | None
    code: str
    state: str
    requested_by: str
    client_id: str
    requested_at: int
    order: int
    silent: bool = False
    store_history: bool = True
    user_expressions: dict[str, str] = {}
    allow_stdin: bool = True
    stop_on_error: bool = True
    batch: str | None = None
    status: str | None = None
    reason: str | None = None
    session_id: str | None = None
    execution_count: int | None = None
    started_at: int | None = None
    ended_at: int | None = None
    reply: dict[str, Any] = {}


class RuntimeRow(msgspec.Struct):
    session_id: str
    state: str
    user: str
    client_id: str
    started_at: int
    info: dict[str, Any] = {}
    ended_at: int | None = None
    reason: str | None = None
    interrupts: int = 0
    restart_requested: bool = False
    holding: str | None = None
    # The last front end's comm event this session handed to Python (CommsDelivered).
    comms_delivered: int = 0


class InputRow(msgspec.Struct):
    execution_id: str
    prompt: str
    password: bool
    state: str
    requested_at: int
    replied_by: str | None = None
    value: str | None = None


class CommRow(msgspec.Struct):
    """An open comm. For a widget (target `jupyter.widget`), its state as the last
    update left it, binary parts as base64 by their JSON path in the state (what an
    exported notebook saves as the widget state)."""

    comm_id: str
    session_id: str
    target_name: str
    opened_by: str
    opened_at: int
    target_module: str | None = None
    live: bool = True  # False once its session ended (its last state is kept)
    state: dict[str, Any] = {}
    buffers: dict[str, str] = {}


class OutputList(msgspec.Struct):
    outputs: list[dict[str, Any]] = []
    clear_on_next: bool = False


class Tables(msgspec.Struct):
    """Everything but the live documents: what is checkpointed and compared."""

    head: int = 0
    last_at: int = 0
    notebook: NotebookRow = msgspec.field(default_factory=NotebookRow)
    cells: dict[str, CellRow] = {}
    executions: dict[str, ExecutionRow] = {}
    runtimes: dict[str, RuntimeRow] = {}
    inputs: dict[str, InputRow] = {}
    outputs: dict[str, OutputList] = {}
    displays: dict[str, list[str]] = {}
    comms: dict[str, CommRow] = {}


class Dirty:
    """Which rows a batch touched, so the store rewrites only those."""

    __slots__ = ("cells", "comms", "executions", "inputs", "notebook", "outputs", "runtimes")

    def __init__(self) -> None:
        self.notebook = False
        self.cells: set[str] = set()
        self.executions: set[str] = set()
        self.runtimes: set[str] = set()
        self.inputs: set[str] = set()
        self.outputs: set[str] = set()
        self.comms: set[str] = set()

    def __bool__(self) -> bool:
        return bool(
            self.notebook
            or self.cells
            or self.executions
            or self.runtimes
            or self.inputs
            or self.outputs
            or self.comms
        )


class State:
    """The tables, and the derived index of pending executions."""

    def __init__(self, tables: Tables | None = None) -> None:
        self.t = tables if tables is not None else Tables()
        self.pending: dict[str, None] = {}
        # No comm event after this seq (a hint, never too low: readers of comm
        # events skip reading the log when it is behind their cursor).
        self.comm_seq = self.t.head
        self.reindex()

    def reindex(self) -> None:
        """Rebuild the derived index of pending executions, in request order."""
        pending = [e for e in self.t.executions.values() if e.state == PENDING]
        pending.sort(key=lambda e: e.order)
        self.pending = dict.fromkeys(e.id for e in pending)

    def first_pending(self) -> str | None:
        return next(iter(self.pending), None)

    def encode(self) -> bytes:
        return _TABLES_ENC.encode(self.t)

    @classmethod
    def decode(cls, blob: bytes) -> State:
        return cls(_TABLES_DEC.decode(blob))

    def copy(self) -> State:
        return State.decode(self.encode())

    def kernel_name(self) -> str | None:
        """The kernel the notebook's metadata names (`kernelspec.name`), if any."""
        spec = self.t.notebook.metadata.get("kernelspec")
        name = spec.get("name") if isinstance(spec, dict) else None
        return name if isinstance(name, str) else None

    def on_anode(self) -> bool:
        """Whether the notebook runs on Anode's kernel (or names none). One on
        another kernel is JupyterLab's: its outputs come from that kernel through
        the browser, and its file is saved by JupyterLab."""
        return self.kernel_name() in (None, ANODE_KERNEL)

    def outputs_of(self, cell: CellRow) -> list[dict[str, Any]]:
        """The outputs a code cell shows now, as the tables hold them."""
        if cell.cell_type != "code" or cell.outputs_key is None:
            return []
        lst = self.t.outputs.get(cell.outputs_key)
        return lst.outputs if lst is not None else []

    def ordered_cells(self) -> list[CellRow]:
        return sorted(self.t.cells.values(), key=lambda c: (c.position, c.id))

    def live_session(self, session_id: str) -> RuntimeRow | None:
        rt = self.t.runtimes.get(session_id)
        return rt if rt is not None and rt.state == "live" else None


_TABLES_ENC = msgspec.msgpack.Encoder()
_TABLES_DEC = msgspec.msgpack.Decoder(Tables)

"""The event catalogue: the single source of truth for what may enter a log.

Every event is a strict msgspec Struct (unknown or missing fields, wrong types
are decode errors), registered under its versioned wire name. The JSON Schema
export feeds the TypeScript side, so nothing is described twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import msgspec

CellType = Literal["code", "markdown", "raw"]
CELL_TYPES: frozenset[str] = frozenset(("code", "markdown", "raw"))
# The nbformat v4 minor the catalogue models. A newer minor may add fields, cell
# types and output types (nbformat: readers keep them); they travel as
# `FieldsKept` and `KeptOutput`, and only notebooks of a newer minor hold them.
NBFORMAT_MINOR = 5
# The nbformat keys the tables model, by cell type; any other is kept (FieldsKept).
NOTEBOOK_FIELDS: frozenset[str] = frozenset(("nbformat", "nbformat_minor", "metadata", "cells"))
_CELL = ("id", "cell_type", "metadata", "source")
CELL_FIELDS: dict[str, frozenset[str]] = {
    "code": frozenset((*_CELL, "outputs", "execution_count")),
    "markdown": frozenset((*_CELL, "attachments")),
    "raw": frozenset((*_CELL, "attachments")),
}
UNKNOWN_CELL_FIELDS: frozenset[str] = frozenset(("id", "metadata"))
CompletionStatus = Literal["ok", "error", "aborted"]
CommOrigin = Literal["runtime", "client"]
JSONValue = Any


class Event(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Base of every catalogue entry; `name` is the versioned wire name."""

    name: ClassVar[str]
    right: ClassVar[str]


# --- outputs (nbformat v4, as they travel inside events) -------------------


class StreamOutput(
    msgspec.Struct, tag_field="output_type", tag="stream", forbid_unknown_fields=True
):
    name: Literal["stdout", "stderr"]
    text: str


class DisplayDataOutput(
    msgspec.Struct, tag_field="output_type", tag="display_data", forbid_unknown_fields=True
):
    data: dict[str, JSONValue]
    metadata: dict[str, JSONValue] = {}
    transient: dict[str, JSONValue] = {}


class ExecuteResultOutput(
    msgspec.Struct, tag_field="output_type", tag="execute_result", forbid_unknown_fields=True
):
    data: dict[str, JSONValue]
    execution_count: int | None
    metadata: dict[str, JSONValue] = {}


class ErrorOutput(msgspec.Struct, tag_field="output_type", tag="error", forbid_unknown_fields=True):
    ename: str
    evalue: str
    traceback: list[str]


Output = StreamOutput | DisplayDataOutput | ExecuteResultOutput | ErrorOutput
_OUTPUT_TYPES: dict[str, type[msgspec.Struct]] = {
    "stream": StreamOutput,
    "display_data": DisplayDataOutput,
    "execute_result": ExecuteResultOutput,
    "error": ErrorOutput,
}


class KeptOutput(
    msgspec.Struct, tag_field="output_type", tag="anode.kept", forbid_unknown_fields=True
):
    """An output of a newer nbformat minor (an output type or fields the catalogue does
    not name), kept as read so that export writes it back. The fields it shares with a
    known output type are checked as strictly as that type's."""

    output: dict[str, JSONValue]

    def __post_init__(self) -> None:
        kind = self.output.get("output_type")
        if not isinstance(kind, str) or kind == "anode.kept":
            raise ValueError("a kept output needs its own string 'output_type'")
        known = _OUTPUT_TYPES.get(kind)
        if known is None:
            return
        named = {k: v for k, v in self.output.items() if k in _fields(known)}
        try:
            msgspec.convert(named, known)
        except msgspec.ValidationError as err:
            raise ValueError(f"kept {kind} output: {err}") from None


FileOutput = Output | KeptOutput


def _fields(kind: type[msgspec.Struct]) -> frozenset[str]:
    return frozenset(kind.__struct_fields__) | {"output_type"}


def file_output(data: Mapping[str, Any]) -> FileOutput:
    """An nbformat output as the catalogue's: a typed one where it names every field,
    else kept as read (ValidationError if neither fits)."""
    if not isinstance(data, Mapping):
        raise msgspec.ValidationError(f"an output is an object, not {type(data).__name__}")
    known = _OUTPUT_TYPES.get(str(data.get("output_type")))
    if known is not None and set(data) <= _fields(known):
        typed: Output = msgspec.convert(data, Output)
        return typed
    kept: KeptOutput = msgspec.convert({"output_type": "anode.kept", "output": data}, KeptOutput)
    return kept


def output_json(output: FileOutput) -> dict[str, Any]:
    """An output as nbformat writes it (a kept one as it was read)."""
    if isinstance(output, KeptOutput):
        return dict(output.output)
    data: dict[str, Any] = msgspec.to_builtins(output)
    return data


# --- notebook and cells ----------------------------------------------------


class NotebookInitialized(Event, frozen=True):
    name: ClassVar[str] = "v1.NotebookInitialized"
    right: ClassVar[str] = "write"
    title: str
    nbformat_minor: int = 5


class NotebookMetadataSet(Event, frozen=True):
    name: ClassVar[str] = "v1.NotebookMetadataSet"
    right: ClassVar[str] = "write"
    key: str
    value: JSONValue


class CellCreated(Event, frozen=True):
    name: ClassVar[str] = "v1.CellCreated"
    right: ClassVar[str] = "write"
    cell_id: str
    cell_type: CellType
    source: str
    position: str
    metadata: dict[str, JSONValue] = {}
    attachments: dict[str, JSONValue] | None = None


class CellSourceChanged(Event, frozen=True):
    name: ClassVar[str] = "v1.CellSourceChanged"
    right: ClassVar[str] = "write"
    cell_id: str
    source: str


class CellSourceEdited(Event, frozen=True):
    """A keystroke (or a few): a client's Yjs `update` to the notebook document
    that edits one cell's source, and the same edit as a text `delta` for the
    fold, in code points: a positive int retains, a negative one deletes, a
    string is inserted. Written by the server from a `DocumentUpdated`;
    clients push that."""

    name: ClassVar[str] = "v1.CellSourceEdited"
    right: ClassVar[str] = "write"
    cell_id: str
    update: str
    delta: list[int | str]


class DocumentUpdated(Event, frozen=True):
    """A Yjs update (base64) to the notebook document (JupyterLab's shared-model
    layout). From a client with a CRDT, the server follows it with the typed
    events it derives; from the server, it writes typed events of clients
    without one (REST, runtimes) into the document."""

    name: ClassVar[str] = "v1.DocumentUpdated"
    right: ClassVar[str] = "write"
    update: str


class CellTypeChanged(Event, frozen=True):
    name: ClassVar[str] = "v1.CellTypeChanged"
    right: ClassVar[str] = "write"
    cell_id: str
    cell_type: CellType


class CellMetadataSet(Event, frozen=True):
    name: ClassVar[str] = "v1.CellMetadataSet"
    right: ClassVar[str] = "write"
    cell_id: str
    key: str
    value: JSONValue


class CellMoved(Event, frozen=True):
    name: ClassVar[str] = "v1.CellMoved"
    right: ClassVar[str] = "write"
    cell_id: str
    position: str


class CellDeleted(Event, frozen=True):
    name: ClassVar[str] = "v1.CellDeleted"
    right: ClassVar[str] = "write"
    cell_id: str


class CellOutputsSet(Event, frozen=True):
    """Outputs that arrived without an execution (an imported notebook)."""

    name: ClassVar[str] = "v1.CellOutputsSet"
    right: ClassVar[str] = "write"
    cell_id: str
    outputs: list[FileOutput]
    execution_count: int | None = None


class FieldsKept(Event, frozen=True):
    """Fields of a newer nbformat minor that the catalogue does not name, kept as read
    so that export writes them back: a cell's (`cell_id`), or the notebook's top-level
    keys (no `cell_id`). A cell of an unknown type is a raw cell (JupyterLab shows no
    other) whose kept fields hold its `cell_type` and all else but its `id` and
    `metadata`; its source, shown as the raw cell's, is written back if edited.
    Replaces the fields kept before."""

    name: ClassVar[str] = "v1.FieldsKept"
    right: ClassVar[str] = "write"
    cell_id: str | None
    fields: dict[str, JSONValue]


# --- runtimes and the queue ------------------------------------------------


class RuntimeSessionStarted(Event, frozen=True):
    name: ClassVar[str] = "v1.RuntimeSessionStarted"
    right: ClassVar[str] = "execute"
    session_id: str
    info: dict[str, JSONValue] = {}


class RuntimeSessionEnded(Event, frozen=True):
    name: ClassVar[str] = "v1.RuntimeSessionEnded"
    right: ClassVar[str] = "runtime"
    session_id: str
    reason: str


class InterruptRequested(Event, frozen=True):
    name: ClassVar[str] = "v1.InterruptRequested"
    right: ClassVar[str] = "execute"
    session_id: str


class RestartRequested(Event, frozen=True):
    name: ClassVar[str] = "v1.RestartRequested"
    right: ClassVar[str] = "execute"
    session_id: str


class ExecutionRequested(Event, frozen=True):
    name: ClassVar[str] = "v1.ExecutionRequested"
    right: ClassVar[str] = "execute"
    execution_id: str
    cell_id: str | None
    code: str
    silent: bool = False
    store_history: bool = True
    user_expressions: dict[str, str] = {}
    allow_stdin: bool = True
    stop_on_error: bool = True
    # Executions asked for together (Run All): with `stop_on_error`, an error
    # ends the rest of the batch that is still pending as cancelled.
    batch: str | None = None


class ExecutionAssigned(Event, frozen=True):
    name: ClassVar[str] = "v1.ExecutionAssigned"
    right: ClassVar[str] = "runtime"
    execution_id: str
    session_id: str


class ExecutionStarted(Event, frozen=True):
    name: ClassVar[str] = "v1.ExecutionStarted"
    right: ClassVar[str] = "runtime"
    execution_id: str
    execution_count: int | None


class OutputAppended(Event, frozen=True):
    name: ClassVar[str] = "v1.OutputAppended"
    right: ClassVar[str] = "runtime"
    execution_id: str
    output: Output


class DisplayUpdated(Event, frozen=True):
    name: ClassVar[str] = "v1.DisplayUpdated"
    right: ClassVar[str] = "runtime"
    display_id: str
    data: dict[str, JSONValue]
    metadata: dict[str, JSONValue] = {}
    execution_id: str | None = None


class OutputsCleared(Event, frozen=True):
    name: ClassVar[str] = "v1.OutputsCleared"
    right: ClassVar[str] = "runtime"
    execution_id: str
    wait: bool = False


class InputRequested(Event, frozen=True):
    name: ClassVar[str] = "v1.InputRequested"
    right: ClassVar[str] = "runtime"
    execution_id: str
    prompt: str
    password: bool = False


class InputReplied(Event, frozen=True):
    name: ClassVar[str] = "v1.InputReplied"
    right: ClassVar[str] = "execute"
    execution_id: str
    value: str


class ExecutionCompleted(Event, frozen=True):
    name: ClassVar[str] = "v1.ExecutionCompleted"
    right: ClassVar[str] = "runtime"
    execution_id: str
    status: CompletionStatus
    reply: dict[str, JSONValue] = {}


class ExecutionCancelled(Event, frozen=True):
    name: ClassVar[str] = "v1.ExecutionCancelled"
    right: ClassVar[str] = "execute"
    execution_id: str


class ExecutionFailed(Event, frozen=True):
    name: ClassVar[str] = "v1.ExecutionFailed"
    right: ClassVar[str] = "runtime"
    execution_id: str
    reason: str


# --- comms (Jupyter's channels between Python objects and front ends) ------


class CommOpened(Event, frozen=True):
    """A comm opened in the interpreter of runtime session `session_id`: by its Python
    (`origin` runtime: ipywidgets creating a widget) or by a front end (`client`: a
    widget manager asking for the states). A comm lives as long as its session. `buffers`
    are binary parts (base64); `execution_id` is the execution that was running."""

    name: ClassVar[str] = "v1.CommOpened"
    right: ClassVar[str] = "execute"
    comm_id: str
    session_id: str
    target_name: str
    origin: CommOrigin
    data: dict[str, JSONValue] = {}
    metadata: dict[str, JSONValue] = {}
    buffers: list[str] = []
    target_module: str | None = None
    execution_id: str | None = None


class _OnComm(Event, frozen=True):
    """What a message and a close carry (not an event of its own)."""

    comm_id: str
    origin: CommOrigin
    data: dict[str, JSONValue] = {}
    metadata: dict[str, JSONValue] = {}
    buffers: list[str] = []
    execution_id: str | None = None


class CommMessage(_OnComm, frozen=True):
    """A message on an open comm, from its runtime's Python or from a front end (which
    the runtime hands to Python in log order, during a running cell too)."""

    name: ClassVar[str] = "v1.CommMessage"
    right: ClassVar[str] = "execute"


class CommClosed(_OnComm, frozen=True):
    name: ClassVar[str] = "v1.CommClosed"
    right: ClassVar[str] = "execute"


CommEvent = CommOpened | CommMessage | CommClosed
# Jupyter's message type for each comm event (what a kernel and Python call them).
COMM_KINDS: dict[str, type[CommOpened] | type[CommMessage] | type[CommClosed]] = {
    "comm_open": CommOpened,
    "comm_msg": CommMessage,
    "comm_close": CommClosed,
}


def comm_kind(event: CommEvent) -> str:
    """`comm_open`, `comm_msg` or `comm_close`."""
    return next(k for k, t in COMM_KINDS.items() if isinstance(event, t))


def comm_event(
    kind: str,
    *,
    session_id: str,
    target_name: str = "",
    target_module: str | None = None,
    **fields: Any,
) -> CommEvent:
    """The event for a Jupyter comm message of `kind` (the open's own fields are
    used only by an open). KeyError for another kind."""
    if kind == "comm_open":
        return CommOpened(
            session_id=session_id, target_name=target_name, target_module=target_module, **fields
        )
    return COMM_KINDS[kind](**fields)


class CommsDelivered(Event, frozen=True):
    """The runtime session handed Python every front end's comm event for it up to `seq`
    (and Python handled them): a front end's message was taken, as a claim takes an
    execution. A kernel answers a front end's comm message once it is delivered."""

    name: ClassVar[str] = "v1.CommsDelivered"
    right: ClassVar[str] = "runtime"
    session_id: str
    seq: int


EVENT_TYPES: tuple[type[Event], ...] = (
    NotebookInitialized,
    NotebookMetadataSet,
    CellCreated,
    CellSourceChanged,
    CellSourceEdited,
    DocumentUpdated,
    CellTypeChanged,
    CellMetadataSet,
    CellMoved,
    CellDeleted,
    CellOutputsSet,
    FieldsKept,
    RuntimeSessionStarted,
    RuntimeSessionEnded,
    InterruptRequested,
    RestartRequested,
    ExecutionRequested,
    ExecutionAssigned,
    ExecutionStarted,
    OutputAppended,
    DisplayUpdated,
    OutputsCleared,
    InputRequested,
    InputReplied,
    ExecutionCompleted,
    ExecutionCancelled,
    ExecutionFailed,
    CommOpened,
    CommMessage,
    CommClosed,
    CommsDelivered,
)

CATALOGUE: dict[str, type[Event]] = {t.name: t for t in EVENT_TYPES}


def json_schema() -> dict[str, Any]:
    """The catalogue as one JSON Schema document: envelope plus every event's args."""
    _, components = msgspec.json.schema_components(EVENT_TYPES, ref_template="#/$defs/{name}")
    events = {t.name: {"$ref": f"#/$defs/{t.__name__}"} for t in EVENT_TYPES}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Anode event catalogue",
        "$defs": components,
        "events": events,
        "envelope": {
            "type": "object",
            "required": ["seq", "id", "name", "args", "client_id", "user", "at"],
            "properties": {
                "seq": {"type": "integer", "minimum": 1},
                "id": {"type": "string"},
                "name": {"enum": sorted(CATALOGUE)},
                "args": {"type": "object"},
                "client_id": {"type": "string"},
                "user": {"type": "string"},
                "at": {"type": "integer"},
            },
        },
    }

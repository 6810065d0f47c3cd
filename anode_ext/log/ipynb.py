"""nbformat in and out: a notebook file becomes the events that build it, and back."""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping
from typing import Any

import msgspec
import nbformat

from . import catalogue as ev
from . import position
from .errors import AnodeError
from .state import State
from .view import source_text, to_notebook


class NotebookFormatError(AnodeError):
    """A file that is not a valid nbformat v4 notebook (or cannot be upgraded to one)."""


def _new_id() -> str:
    return uuid.uuid4().hex


def read_notebook(path: str | os.PathLike[str]) -> nbformat.NotebookNode:
    """Read and validate a notebook file, upgrading older formats to v4."""
    try:
        nb = nbformat.read(os.fspath(path), as_version=4)  # type: ignore[no-untyped-call]
    except FileNotFoundError:
        raise NotebookFormatError(f"{os.fspath(path)}: no such file") from None
    except Exception as err:
        raise NotebookFormatError(
            f"{os.fspath(path)}: not a notebook ({_first_line(err)})"
        ) from None
    return validated(nb, os.fspath(path))


def validated(nb: Any, where: str = "notebook") -> nbformat.NotebookNode:
    node: nbformat.NotebookNode = nbformat.from_dict(nb)  # type: ignore[no-untyped-call]
    try:
        nbformat.validate(node)
    except nbformat.ValidationError as err:
        raise NotebookFormatError(f"{where}: invalid nbformat: {_first_line(err)}") from None
    return node


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def _joined(value: Any) -> Any:
    return "".join(value) if isinstance(value, list) else value


def _output(out: Mapping[str, Any]) -> ev.FileOutput:
    """An nbformat output as the catalogue's (multi-line lists joined, as nbformat reads
    them); one of a newer minor kept as read."""
    data = _plain(out)
    if data.get("output_type") == "stream":
        data["text"] = _joined(data.get("text", ""))
    if isinstance(data.get("data"), dict):
        data["data"] = {
            k: (_joined(v) if not k.endswith("json") else v) for k, v in data["data"].items()
        }
    return ev.file_output(data)


def import_events(nb: Mapping[str, Any], title: str = "") -> list[ev.Event]:
    """The events that rebuild `nb` on an empty log. What a newer nbformat minor adds
    (fields, cell and output types) is kept (FieldsKept, KeptOutput), as nbformat asks
    of readers, so that export writes it back."""
    node = validated(nb)
    meta = dict(node.get("metadata", {}))
    out: list[ev.Event] = [
        ev.NotebookInitialized(
            title=title or str(meta.get("title", "")),
            nbformat_minor=int(node.get("nbformat_minor", 5)),
        )
    ]
    out.extend(ev.NotebookMetadataSet(key=k, value=_plain(v)) for k, v in meta.items())
    top = _kept(node, ev.NOTEBOOK_FIELDS)
    if top:
        out.append(ev.FieldsKept(cell_id=None, fields=top))
    cells = node.get("cells", [])
    keys = position.spread(len(cells))
    seen: set[str] = set()
    for cell, key in zip(cells, keys, strict=True):
        cell_id = str(cell.get("id") or _new_id())
        if cell_id in seen:
            cell_id = _new_id()
        seen.add(cell_id)
        kind = cell["cell_type"]
        known = kind in ev.CELL_TYPES
        attachments = cell.get("attachments") if kind in ("markdown", "raw") else None
        out.append(
            ev.CellCreated(
                cell_id=cell_id,
                cell_type=kind if known else "raw",
                source=source_text(cell.get("source", "")),
                position=key,
                metadata=_plain(cell.get("metadata", {})),
                attachments=_plain(attachments) if attachments is not None else None,
            )
        )
        kept = _kept(cell, ev.CELL_FIELDS[kind] if known else ev.UNKNOWN_CELL_FIELDS)
        if kept:
            out.append(ev.FieldsKept(cell_id=cell_id, fields=kept))
        if kind == "code" and (cell.get("outputs") or cell.get("execution_count")):
            try:
                outputs = [_output(o) for o in cell.get("outputs", [])]
            except msgspec.ValidationError as err:
                raise NotebookFormatError(f"cell {cell_id}: unsupported output: {err}") from None
            out.append(
                ev.CellOutputsSet(
                    cell_id=cell_id, outputs=outputs, execution_count=cell.get("execution_count")
                )
            )
    return out


def _kept(node: Mapping[str, Any], named: frozenset[str]) -> dict[str, Any]:
    """The fields of `node` the tables do not model (a newer minor's), as plain JSON."""
    return {k: _plain(v) for k, v in node.items() if k not in named}


def _plain(value: Any) -> Any:
    """NotebookNode (a dict subclass) to plain JSON data."""
    return msgspec.json.decode(msgspec.json.encode(value))


def export_notebook(state: State) -> nbformat.NotebookNode:
    """The state as a valid nbformat v4 notebook."""
    return validated(to_notebook(state), "exported notebook")


def export_text(state: State) -> str:
    text: str = nbformat.writes(export_notebook(state), version=4)  # type: ignore[no-untyped-call]
    return text + ("" if text.endswith("\n") else "\n")

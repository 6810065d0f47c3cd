"""The materialized tables in SQLite: schema, writing changed rows, loading them back.

Columns mirror the row Structs of state.py one to one; nested values are JSON
text, so the tables stay queryable with plain SQL.
"""

from __future__ import annotations

import sqlite3
import types
import typing
from typing import Any

import msgspec

from .state import (
    CellRow,
    CommRow,
    Dirty,
    ExecutionRow,
    InputRow,
    NotebookRow,
    OutputList,
    RuntimeRow,
    State,
    Tables,
)

# 3: `kept` (fields of a newer nbformat minor) on notebook and cells; 4: comms
SCHEMA_VERSION = 4
APPLICATION_ID = 0x414E4F44  # "ANOD"

_JSON_ENC = msgspec.json.Encoder()
_json_decode = msgspec.json.decode


class _Spec:
    """How one row Struct maps onto one SQL table."""

    def __init__(self, table: str, row: type[msgspec.Struct], key: str) -> None:
        self.table = table
        self.row = row
        self.key = key
        fields = msgspec.structs.fields(row)
        self.columns = [f.name for f in fields]
        self.json = {f.name for f in fields if _is_nested(f.type)}
        self.bools = {f.name for f in fields if f.type is bool}
        # What a column added by `migrate` holds in rows made before it.
        self.defaults = {f.name: _default_sql(f) for f in fields if f.name in self.json}
        self.json_idx = [i for i, c in enumerate(self.columns) if c in self.json]
        self.bool_idx = [i for i, c in enumerate(self.columns) if c in self.bools]
        cols = ", ".join(f'"{c}"' for c in self.columns)
        marks = ", ".join("?" for _ in self.columns)
        self.upsert = f"INSERT OR REPLACE INTO {table} ({cols}) VALUES ({marks})"
        self.delete = f'DELETE FROM {table} WHERE "{key}" = ?'

    def select(self, have: set[str]) -> str:
        """All columns; a read-only store of an older schema lacks some: their defaults."""
        cols = ", ".join(
            f'"{c}"' if c in have else _literal(self.defaults.get(c)) for c in self.columns
        )
        return f"SELECT {cols} FROM {self.table}"

    def ddl(self) -> str:
        cols = ", ".join(f'"{c}"' + (" PRIMARY KEY" if c == self.key else "") for c in self.columns)
        return f"CREATE TABLE IF NOT EXISTS {self.table} ({cols})"

    def to_sql(self, row: Any) -> tuple[Any, ...]:
        values = list(msgspec.structs.astuple(row))
        for i in self.json_idx:
            if values[i] is not None:
                values[i] = _JSON_ENC.encode(values[i]).decode()
        return tuple(values)

    def from_sql(self, values: tuple[Any, ...]) -> Any:
        vals = list(values)
        for i in self.json_idx:
            if vals[i] is not None:
                vals[i] = _json_decode(vals[i])
        for i in self.bool_idx:
            vals[i] = bool(vals[i])
        return self.row(*vals)


def _default_sql(field: msgspec.structs.FieldInfo) -> str | None:
    if field.default_factory is not msgspec.NODEFAULT:
        value = field.default_factory()
    elif field.default is not msgspec.NODEFAULT:
        value = field.default
    else:
        return None
    return None if value is None else _JSON_ENC.encode(value).decode()


def _literal(text: str | None) -> str:
    return "NULL" if text is None else "'" + text.replace("'", "''") + "'"


def _is_nested(tp: Any) -> bool:
    origin = typing.get_origin(tp)
    if origin in (dict, list):
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_is_nested(a) for a in typing.get_args(tp))
    return False


CELLS = _Spec("cells", CellRow, "id")
EXECUTIONS = _Spec("executions", ExecutionRow, "id")
RUNTIMES = _Spec("runtime_sessions", RuntimeRow, "session_id")
INPUTS = _Spec("input_requests", InputRow, "execution_id")
COMMS = _Spec("comms", CommRow, "comm_id")
_SPECS = {
    "cells": CELLS,
    "executions": EXECUTIONS,
    "runtimes": RUNTIMES,
    "inputs": INPUTS,
    "comms": COMMS,
}

DDL = [
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS events (
        seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, name TEXT NOT NULL,
        args TEXT NOT NULL, client_id TEXT NOT NULL, user TEXT NOT NULL, at INTEGER NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS notebook (
        k INTEGER PRIMARY KEY CHECK (k = 0), title TEXT, metadata TEXT, nbformat_minor INTEGER,
        initialized INTEGER, head INTEGER NOT NULL, last_at INTEGER NOT NULL,
        kept TEXT DEFAULT '{}')""",
    CELLS.ddl(),
    EXECUTIONS.ddl(),
    RUNTIMES.ddl(),
    INPUTS.ddl(),
    COMMS.ddl(),
    """CREATE TABLE IF NOT EXISTS outputs (
        key TEXT NOT NULL, idx INTEGER NOT NULL, output TEXT NOT NULL, PRIMARY KEY (key, idx))""",
    "CREATE TABLE IF NOT EXISTS output_lists (key TEXT PRIMARY KEY, clear_on_next INTEGER)",
    "CREATE TABLE IF NOT EXISTS displays (display_id TEXT PRIMARY KEY, keys TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS checkpoints (seq INTEGER PRIMARY KEY, state BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS doc_snapshots (seq INTEGER PRIMARY KEY, state BLOB NOT NULL)",
    # Named columns: on a store of an older schema this runs before `migrate`.
    "INSERT OR IGNORE INTO notebook (k, title, metadata, nbformat_minor, initialized, head, "
    "last_at) VALUES (0, '', '{}', 5, 0, 0, 0)",
]


def migrate(db: sqlite3.Connection) -> None:
    """Columns a newer row Struct added, on tables an older store made."""
    for spec in _SPECS.values():
        have = _columns(db, spec.table)
        for column in spec.columns:
            if column not in have:
                default = _literal(spec.defaults.get(column))
                db.execute(f'ALTER TABLE {spec.table} ADD COLUMN "{column}" DEFAULT {default}')
    if "kept" not in _columns(db, "notebook"):
        db.execute("ALTER TABLE notebook ADD COLUMN kept TEXT DEFAULT '{}'")


def _columns(db: sqlite3.Connection, table: str) -> set[str]:
    return {row[1] for row in db.execute(f"PRAGMA table_info({table})")}


def write(db: sqlite3.Connection, state: State, dirty: Dirty) -> None:
    """Rewrite exactly the rows a batch touched (inside the caller's transaction)."""
    t = state.t
    for name in ("cells", "executions", "runtimes", "inputs", "comms"):
        keys: set[str] = getattr(dirty, name)
        if not keys:
            continue
        spec = _SPECS[name]
        rows: dict[str, Any] = getattr(t, name)
        present = [spec.to_sql(rows[k]) for k in keys if k in rows]
        gone = [(k,) for k in keys if k not in rows]
        if present:
            db.executemany(spec.upsert, present)
        if gone:
            db.executemany(spec.delete, gone)
    if dirty.outputs:
        _write_outputs(db, t, dirty.outputs)
    nb = t.notebook
    if dirty.notebook:
        db.execute(
            "UPDATE notebook SET title=?, metadata=?, nbformat_minor=?, initialized=?, head=?, "
            "last_at=?, kept=? WHERE k=0",
            (
                nb.title,
                _JSON_ENC.encode(nb.metadata).decode(),
                nb.nbformat_minor,
                int(nb.initialized),
                t.head,
                t.last_at,
                _JSON_ENC.encode(nb.kept).decode(),
            ),
        )
    else:
        db.execute("UPDATE notebook SET head=?, last_at=? WHERE k=0", (t.head, t.last_at))


def _write_outputs(db: sqlite3.Connection, t: Tables, keys: set[str]) -> None:
    db.executemany("DELETE FROM outputs WHERE key = ?", [(k,) for k in keys])
    rows: list[tuple[str, int, str]] = []
    lists: list[tuple[str, int]] = []
    gone: list[tuple[str]] = []
    for key in keys:
        lst = t.outputs.get(key)
        if lst is None:
            gone.append((key,))
            continue
        lists.append((key, int(lst.clear_on_next)))
        rows.extend((key, i, _JSON_ENC.encode(o).decode()) for i, o in enumerate(lst.outputs))
    if rows:
        db.executemany("INSERT INTO outputs (key, idx, output) VALUES (?, ?, ?)", rows)
    if lists:
        db.executemany(
            "INSERT OR REPLACE INTO output_lists (key, clear_on_next) VALUES (?, ?)", lists
        )
    if gone:
        db.executemany("DELETE FROM output_lists WHERE key = ?", gone)
    touched = {d for d, ks in t.displays.items() if keys.intersection(ks)}
    if touched:
        db.executemany(
            "INSERT OR REPLACE INTO displays (display_id, keys) VALUES (?, ?)",
            [(d, _JSON_ENC.encode(t.displays[d]).decode()) for d in touched],
        )


def load(db: sqlite3.Connection) -> Tables:
    """The tables as committed: the state a store opens with."""
    # A store of an older schema opened read-only is not migrated: no `kept` yet.
    kept_sql = "kept" if "kept" in _columns(db, "notebook") else "'{}'"
    row = db.execute(
        "SELECT title, metadata, nbformat_minor, initialized, head, last_at, "
        f"{kept_sql} FROM notebook WHERE k=0"
    ).fetchone()
    title, metadata, minor, initialized, head, last_at, kept = row
    t = Tables(head=head, last_at=last_at)
    t.notebook = NotebookRow(
        title=title or "",
        metadata=_json_decode(metadata) if metadata else {},
        nbformat_minor=minor if minor is not None else 5,
        initialized=bool(initialized),
        kept=_json_decode(kept) if kept else {},
    )
    for name, spec in _SPECS.items():
        table: dict[str, Any] = getattr(t, name)
        key_idx = spec.columns.index(spec.key)
        have = _columns(db, spec.table)
        if not have:
            continue  # a read-only store of an older schema: no such table yet
        for values in db.execute(spec.select(have)):
            table[values[key_idx]] = spec.from_sql(values)
    t.executions = dict(sorted(t.executions.items(), key=lambda kv: kv[1].order))
    for key, clear in db.execute("SELECT key, clear_on_next FROM output_lists"):
        t.outputs[key] = OutputList([], bool(clear))
    for key, _idx, output in db.execute("SELECT key, idx, output FROM outputs ORDER BY key, idx"):
        t.outputs[key].outputs.append(_json_decode(output))
    for display_id, keys in db.execute("SELECT display_id, keys FROM displays"):
        t.displays[display_id] = _json_decode(keys)
    return t


def dump(db: sqlite3.Connection) -> dict[str, list[tuple[Any, ...]]]:
    """Every materialized table's rows, sorted: for comparing two stores exactly."""
    out = {}
    for table in (
        "notebook",
        "cells",
        "executions",
        "runtime_sessions",
        "input_requests",
        "comms",
        "outputs",
        "output_lists",
        "displays",
    ):
        out[table] = sorted(db.execute(f"SELECT * FROM {table}").fetchall(), key=repr)
    return out

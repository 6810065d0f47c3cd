"""One notebook's log: an SQLite file holding the events and the tables folded from them.

A push is validated, checked against the queue's rules, folded and written in
one transaction: either every event of it is in the log and the tables, or
none is. The store assigns `seq` (gap-free from 1) and `at`; who pushed comes
from the caller.
"""

from __future__ import annotations

import collections
import itertools
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from . import catalogue as ev
from . import tables
from .catalogue import Event
from .core import (
    DOC_EVENTS,
    ENC,
    Item,
    apply_document_rows,
    check_known,
    decode_rows,
    envelope_json,
    plan,
    unique_ids,
)
from .document import NotebookDoc, decode_update
from .envelope import Envelope
from .errors import Refused, StoreError
from .materialize import Batch, fold, fold_all
from .rules import Identity
from .state import State
from .validate import Limits, convert_batch, decode_batch

CHECKPOINT_EVERY = 2000
# The document is snapshotted (one update holding its state) after this many
# document events, so opening it applies at most that many.
DOCUMENT_SNAPSHOT_EVERY = 500
# Rows kept in memory after their commit, for readers at the head.
RECENT_ROWS = 512
_SYNC_MODES = ("OFF", "NORMAL", "FULL", "EXTRA")


class Store:
    """A notebook's event log and materialized state, kept in one SQLite file."""

    def __init__(
        self,
        db: sqlite3.Connection,
        path: str,
        limits: Limits,
        writable: bool,
        document: bool = False,
    ) -> None:
        self._db = db
        self.path = path
        self.limits = limits
        self.writable = writable
        self._lock = threading.RLock()
        self.state = State(tables.load(db))
        self.keeps_document = document
        self.document: NotebookDoc | None = None
        self._doc_since_snapshot = 0
        self._doc_touched = False  # this append changed the document (undo: reload it)
        # The last rows this store committed, ending at its head: live readers
        # (a websocket a keystroke behind) read them without a query.
        self._recent: collections.deque[tuple[Any, ...]] = collections.deque(maxlen=RECENT_ROWS)
        self._catch_up()
        if document and self.document is None and self._has_document():
            self.document, self._doc_since_snapshot = self._load_document()

    # -- opening -----------------------------------------------------------
    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        create: bool = False,
        readonly: bool = False,
        limits: Limits | None = None,
        synchronous: str = "NORMAL",
        document: bool = False,
    ) -> Store:
        """Open (or with `create`, make) a store; StoreError says why one cannot be used.
        `document`: keep the notebook's Yjs document too (a server that serves browsers)."""
        p = os.fspath(path)
        exists = os.path.exists(p)
        if not exists and not create:
            raise StoreError(f"{p}: no such store")
        if exists and os.path.isdir(p):
            raise StoreError(f"{p}: is a directory, not a store")
        if synchronous.upper() not in _SYNC_MODES:
            raise StoreError(f"synchronous must be one of {_SYNC_MODES}")
        # A reader still opens read-write where it may, so that SQLite removes its -wal and
        # -shm files on close; `writable` keeps this class from writing anything.
        ro = readonly and not os.access(p, os.W_OK)
        uri = f"file:{Path(p).absolute().as_posix()}" + (
            "?mode=ro" if ro else "?mode=rw" if exists else ""
        )
        try:
            db = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as err:
            raise StoreError(f"{p}: cannot open: {err}") from None
        try:
            cls._prepare(db, p, exists, readonly, synchronous.upper())
            return cls(db, p, limits or Limits(), not readonly, document)
        except sqlite3.DatabaseError as err:
            db.close()
            raise StoreError(f"{p}: not an Anode store or corrupt ({err})") from None
        except StoreError:
            db.close()
            raise

    @staticmethod
    def _prepare(db: sqlite3.Connection, p: str, exists: bool, readonly: bool, sync: str) -> None:
        app_id = db.execute("PRAGMA application_id").fetchone()[0]
        version = db.execute("PRAGMA user_version").fetchone()[0]
        empty = db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0
        if exists and not empty and app_id != tables.APPLICATION_ID:
            raise StoreError(f"{p}: an SQLite file, but not an Anode store")
        if version > tables.SCHEMA_VERSION:
            raise StoreError(
                f"{p}: made by a newer Anode (store schema {version}, this one reads "
                f"{tables.SCHEMA_VERSION}); upgrade anode_ext"
            )
        if readonly:
            if empty:
                raise StoreError(f"{p}: an empty file, not an Anode store")
            return
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={sync}")
        db.execute("PRAGMA busy_timeout=10000")
        # A checkpoint fsyncs the main file; every 1000 pages (the default) it
        # came every few batches. 10000 pages bounds the WAL near 40 MB.
        db.execute("PRAGMA wal_autocheckpoint=10000")
        if empty or version < tables.SCHEMA_VERSION:
            db.execute("BEGIN IMMEDIATE")
            for stmt in tables.DDL:
                db.execute(stmt)
            tables.migrate(db)
            db.execute(f"PRAGMA application_id={tables.APPLICATION_ID}")
            db.execute(f"PRAGMA user_version={tables.SCHEMA_VERSION}")
            db.execute("COMMIT")

    def checkpoint_wal(self) -> None:
        """Fold the WAL into the main file (before handing a store file over)."""
        with self._lock:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def head(self) -> int:
        return self.state.t.head

    # -- appending -----------------------------------------------------------
    def push_json(self, raw: bytes, who: Identity, *, now: int | None = None) -> list[int]:
        """Append a JSON array of `{id, name, args}` as pushed over the wire."""
        return self._append(decode_batch(raw, self.limits), who, now)

    def push(
        self, items: Sequence[dict[str, Any]], who: Identity, *, now: int | None = None
    ) -> list[int]:
        """Append already-parsed `{id, name, args}` dicts (HTTP bodies, tests)."""
        return self._append(convert_batch(list(items), self.limits), who, now)

    def append(
        self, events: Sequence[tuple[str, Event]], who: Identity, *, now: int | None = None
    ) -> list[int]:
        """Append typed events (in-process clients: the agent, import)."""
        return self._append([(i, e, ENC.encode(e)) for i, e in events], who, now)

    def _has_document(self) -> bool:
        """A log gets its document when a client first asks for it (then its
        first snapshot is written): a log nobody opens in a browser pays nothing."""
        row = self._db.execute("SELECT 1 FROM doc_snapshots LIMIT 1").fetchone()
        return row is not None

    def sync_document(self, who: Identity) -> int | None:
        """Write into the document whatever the tables hold that it does not (a
        store first served to browsers, or appended to by a process that keeps
        no document); the seq of the `DocumentUpdated` that did it, if any."""
        if not self.keeps_document:
            raise StoreError(f"{self.path}: opened without its document")
        with self._lock:
            if self.document is None:
                self.document = NotebookDoc()
                self._doc_since_snapshot = DOCUMENT_SNAPSHOT_EVERY  # the first one now
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._catch_up()
                seqs = self._append_locked(self._db, [], who, None, False, full=True)
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                self._reload_document()
                raise
        return seqs[0] if seqs else None

    def _append(self, batch: list[Item], who: Identity, now: int | None) -> list[int]:
        if not self.writable:
            raise StoreError(f"{self.path}: opened read-only")
        unique_ids(batch)
        with self._lock:
            db = self._db
            # Fast path: assume no id was seen before and let the UNIQUE index
            # say otherwise. A retry (or a refusal, which may be a retry of an
            # event the queue has moved past) takes the careful path.
            for careful in (False, True):
                db.execute("BEGIN IMMEDIATE")
                try:
                    self._catch_up()
                    return self._append_locked(db, batch, who, now, careful)
                except (_SeenBefore, Refused) as err:
                    if db.in_transaction:
                        db.execute("ROLLBACK")
                    self._reload_document()
                    if careful:
                        raise
                    last: BaseException = err
                except BaseException:
                    if db.in_transaction:
                        db.execute("ROLLBACK")
                    self._reload_document()
                    raise
            raise last  # pragma: no cover - the careful pass returns or raises

    def _append_locked(
        self,
        db: sqlite3.Connection,
        batch: list[Item],
        who: Identity,
        now: int | None,
        careful: bool,
        *,
        full: bool = False,
    ) -> list[int]:
        known = self._known_ids(db, batch) if careful else {}
        if batch and len(known) == len(batch):
            db.execute("ROLLBACK")
            return [known[b[0]] for b in batch]
        doc = self.document
        p = plan(
            self.state,
            doc,
            batch,
            who,
            now,
            known,
            full=full,
            touched=self._touch_document,
        )
        try:
            dirty = p.commit()
            if not p.rows and not (full and doc is not None and not self._has_document()):
                db.execute("ROLLBACK")
                self._doc_touched = False
                return p.seqs
            try:
                db.executemany(
                    "INSERT INTO events (seq, id, name, args, client_id, user, at) "
                    "VALUES (?,?,?,?,?,?,?)",
                    p.rows,
                )
            except sqlite3.IntegrityError:
                raise _SeenBefore from None
            tables.write(db, self.state, dirty)
            if doc is not None and (p.doc_events or full):
                self._snapshot_document(db, doc, p.head, p.doc_events)
            db.execute("COMMIT")
            self._recent.extend(p.rows)
            self._doc_touched = False
        except BaseException:
            p.rollback()
            raise
        return p.seqs

    def _touch_document(self) -> None:
        self._doc_touched = True

    def _snapshot_document(
        self, db: sqlite3.Connection, doc: NotebookDoc, seq: int, added: int
    ) -> None:
        self._doc_since_snapshot += added
        if self._doc_since_snapshot < DOCUMENT_SNAPSHOT_EVERY and added:
            return
        db.execute("DELETE FROM doc_snapshots")
        db.execute("INSERT INTO doc_snapshots (seq, state) VALUES (?, ?)", (seq, doc.encode()))
        self._doc_since_snapshot = 0

    def _load_document(self) -> tuple[NotebookDoc, int]:
        """The document from its latest snapshot and the log's updates after it,
        and how many updates that was."""
        with self._lock:
            row = self._db.execute(
                "SELECT seq, state FROM doc_snapshots ORDER BY seq DESC LIMIT 1"
            ).fetchone()
            after = row[0] if row else 0
            doc = NotebookDoc(row[1] if row else None)
            rows = self._db.execute(
                "SELECT name, args FROM events WHERE seq > ? AND name IN (?, ?) ORDER BY seq",
                (after, *DOC_EVENTS),
            ).fetchall()
            count = apply_document_rows(doc, rows)
        return doc, count

    def _reload_document(self) -> None:
        """After a rollback: the document as the log has it (a refused update may
        have been applied to it before the refusal)."""
        if self.document is not None and self._doc_touched:
            if self._has_document():
                self.document, self._doc_since_snapshot = self._load_document()
            else:
                self.document = None  # its first sync was undone
            self._doc_touched = False

    def replay_document(self) -> NotebookDoc:
        """The document from every update in the log, ignoring snapshots."""
        doc = NotebookDoc()
        for env in self.iter_events():
            if isinstance(env.args, ev.DocumentUpdated | ev.CellSourceEdited):
                doc.apply(decode_update(env.args.update))
        return doc

    def _known_ids(self, db: sqlite3.Connection, batch: list[Item]) -> dict[str, int]:
        """Events pushed before (a retry): their seqs; the same id with other content is refused."""
        ids = [b[0] for b in batch]
        stored: list[tuple[str, int, str, str]] = []
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            stored += db.execute(
                f"SELECT id, seq, name, args FROM events WHERE id IN ({marks})", chunk
            ).fetchall()
        return check_known(batch, stored)

    def refresh(self) -> None:
        """Pick up what other processes appended (reads are otherwise as of the last push)."""
        with self._lock:
            self._catch_up()

    def _catch_up(self) -> None:
        """Fold events another process appended since we last looked."""
        (db_head,) = self._db.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()
        if db_head != self.state.t.head:
            self._recent.clear()
            self.state = State(tables.load(self._db))
            if self.document is not None or (self.keeps_document and self._has_document()):
                self.document, self._doc_since_snapshot = self._load_document()

    # -- reading ---------------------------------------------------------------
    def events(self, after: int = 0, limit: int | None = None) -> list[Envelope]:
        return decode_rows(self._rows(after, limit))

    def events_json(self, after: int = 0, limit: int | None = None) -> list[bytes]:
        """Envelopes as wire JSON, in seq order."""
        return [envelope_json(r) for r in self._rows(after, limit)]

    def _rows(self, after: int, limit: int | None) -> list[tuple[Any, ...]]:
        recent = self._recent
        if recent and recent[0][0] <= after + 1 and recent[-1][0] == self.state.t.head:
            tail = list(itertools.islice(recent, after + 1 - recent[0][0], None))
            return tail if limit is None else tail[:limit]
        sql = (
            "SELECT seq, id, name, args, client_id, user, at FROM events WHERE seq > ? ORDER BY seq"
        )
        params: tuple[int, ...] = (after,)
        if limit is not None:
            sql += " LIMIT ?"
            params = (after, limit)
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def iter_events(
        self, after: int = 0, upto: int | None = None, chunk: int = 5000
    ) -> Iterator[Envelope]:
        while True:
            batch = self.events(after, chunk)
            for env in batch:
                if upto is not None and env.seq > upto:
                    return
                yield env
            if len(batch) < chunk:
                return
            after = batch[-1].seq

    # -- time travel -------------------------------------------------------------
    def state_at(self, seq: int) -> State:
        """The state as it was right after event `seq`: nearest checkpoint, then replay."""
        if seq < 0:
            raise ValueError("seq must be >= 0")
        with self._lock:
            if seq >= self.head:
                return self.state.copy()
            row = self._db.execute(
                "SELECT seq, state FROM checkpoints WHERE seq <= ? ORDER BY seq DESC LIMIT 1",
                (seq,),
            ).fetchone()
        state = State.decode(row[1]) if row else State()
        new_checkpoints = []
        batch = Batch(state, undo=False)
        for env in self.iter_events(state.t.head, seq):
            fold(batch, env)
            if env.seq % CHECKPOINT_EVERY == 0:
                batch.commit()
                new_checkpoints.append((env.seq, state.encode()))
        batch.commit()
        if new_checkpoints and self.writable:
            with self._lock:
                self._db.executemany(
                    "INSERT OR IGNORE INTO checkpoints (seq, state) VALUES (?, ?)", new_checkpoints
                )
        return state

    def replay(self) -> State:
        """The state folded from zero, ignoring every table and checkpoint."""
        return fold_all(State(), self.iter_events())


class _SeenBefore(Exception):
    """An id of the batch is already in the log: retry with the lookup."""


__all__ = ["Identity", "Refused", "Store", "StoreError"]

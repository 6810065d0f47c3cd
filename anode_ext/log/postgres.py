"""A notebook's log in PostgreSQL, shared by several server replicas.

The database orders each log: an append moves (and so locks) the notebook's
head row only where this replica folded to, in the statement that inserts
its rows, so seqs are gap-free and in commit order; the unique (notebook, id)
index makes a retried push return its first seqs. Every replica folds the
same rows through the same core as the SQLite store.

The state a reader sees in memory is always a committed one: a push is
checked and folded (`core.plan`), set aside while it is written, and put back
once the commit has succeeded. The document is the exception: a browser's
update is applied to it while the push is written, and reloaded if the write
fails.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
from collections.abc import Sequence
from typing import Any

from .catalogue import Event
from .core import (
    DOC_EVENTS,
    ENC,
    Item,
    Row,
    apply_document_rows,
    check_known,
    decode_rows,
    envelope_json,
    plan,
    unique_ids,
)
from .document import NotebookDoc
from .envelope import Envelope
from .errors import Refused, StoreError
from .local import Hub
from .materialize import fold_all
from .rules import Identity
from .state import State
from .validate import Limits, convert_batch, decode_batch

try:  # the `postgres` extra
    import psycopg
    from psycopg import errors as pg_errors
except ImportError:  # pragma: no cover - only without the extra
    psycopg = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

CHECKPOINT_EVERY = 2000
DOCUMENT_SNAPSHOT_EVERY = 500
RECENT_ROWS = 4096

SCHEMA = """
CREATE TABLE IF NOT EXISTS anode_notebooks (
    id text PRIMARY KEY,
    head bigint NOT NULL DEFAULT 0,
    title text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now()
);
-- No foreign key to anode_notebooks: an append writes rows only through the
-- head row it has just updated, and a key check per row would double its cost.
CREATE TABLE IF NOT EXISTS anode_events (
    notebook text NOT NULL,
    seq bigint NOT NULL,
    id text NOT NULL,
    name text NOT NULL,
    args text NOT NULL,
    client_id text NOT NULL,
    "user" text NOT NULL,
    at bigint NOT NULL,
    PRIMARY KEY (notebook, seq),
    UNIQUE (notebook, id)
);
CREATE TABLE IF NOT EXISTS anode_checkpoints (
    notebook text NOT NULL REFERENCES anode_notebooks (id),
    seq bigint NOT NULL,
    state bytea NOT NULL,
    PRIMARY KEY (notebook, seq)
);
CREATE TABLE IF NOT EXISTS anode_doc_snapshots (
    notebook text PRIMARY KEY REFERENCES anode_notebooks (id),
    seq bigint NOT NULL,
    state bytea NOT NULL
);
CREATE TABLE IF NOT EXISTS anode_paths (
    path text PRIMARY KEY,
    notebook text NOT NULL REFERENCES anode_notebooks (id)
);
"""
_SCHEMA_LOCK = 0x414E4F44  # "ANOD": two replicas creating the schema at once take turns
CHANNEL = "anode_log"  # NOTIFY payload: "<notebook id> <head>"
_COLUMNS = 'seq, id, name, args, client_id, "user", at'
# An append: the head row is updated (and so locked) only if it is still where
# this replica folded to, and the rows go in only then; a concurrent append to
# the same notebook waits for the lock, finds the head moved and writes nothing.
_APPEND = f"""
WITH moved AS (
    UPDATE anode_notebooks SET head = %s, title = %s WHERE id = %s AND head = %s RETURNING id
), appended AS (
    INSERT INTO anode_events (notebook, {_COLUMNS})
    SELECT moved.id, %s + rows.n, rows.id, rows.name, rows.args, %s, %s, %s
    FROM moved, unnest(%b::text[], %b::text[], %b::text[]) WITH ORDINALITY
        AS rows (id, name, args, n)
)
SELECT pg_notify('{CHANNEL}', %s) FROM moved
"""


async def connect(url: str, name: str = "anode") -> psycopg.AsyncConnection[Any]:
    """A connection in autocommit mode (transactions are explicit); `name` is its
    application_name (operators, and tests, find the listener by it)."""
    if psycopg is None:
        raise StoreError("PostgreSQL needs psycopg: pip install 'anode_ext[postgres]'")
    try:
        conn = await psycopg.AsyncConnection.connect(url, autocommit=True, application_name=name)
    except psycopg.Error as err:
        raise StoreError(f"cannot connect to PostgreSQL: {err}") from None
    return conn


async def create_schema(conn: psycopg.AsyncConnection[Any]) -> None:
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
        await conn.execute(SCHEMA)


class _SeenBefore(Exception):
    """An id of the batch is already in the log: retry with the lookup."""


class PgStore:
    """One notebook's log and folded state, kept in PostgreSQL."""

    def __init__(
        self,
        conn: psycopg.AsyncConnection[Any],
        url: str,
        notebook_id: str,
        limits: Limits,
        document: bool,
    ) -> None:
        self._conn = conn
        self.url = url
        self.id = notebook_id
        self.path = f"postgresql:{notebook_id}"
        self.limits = limits
        self.writable = True
        self.keeps_document = document
        self.state = State()
        self.document: NotebookDoc | None = None
        self._doc_since_snapshot = 0
        self._doc_touched = False
        self._has_snapshot = False
        self._lock = asyncio.Lock()  # one append or catch-up at a time in this process
        self._leading = False
        self._recent: collections.deque[Row] = collections.deque(maxlen=RECENT_ROWS)

    # -- opening -----------------------------------------------------------
    @classmethod
    async def open(
        cls,
        url: str,
        notebook_id: str,
        *,
        create: bool = False,
        limits: Limits | None = None,
        document: bool = False,
    ) -> PgStore:
        """Open a notebook's log (with `create`, make it); StoreError when there is none."""
        conn = await connect(url)
        try:
            await create_schema(conn)
            if create:
                await conn.execute(
                    "INSERT INTO anode_notebooks (id) VALUES (%s) ON CONFLICT DO NOTHING",
                    (notebook_id,),
                )
            store = cls(conn, url, notebook_id, limits or Limits(), document)
            await store._load()
        except BaseException:
            await conn.close()
            raise
        return store

    async def _load(self) -> None:
        """The state from the latest checkpoint and the events after it."""
        cur = await (await self._db()).execute(
            "SELECT head FROM anode_notebooks WHERE id = %s", (self.id,)
        )
        if await cur.fetchone() is None:
            raise StoreError(f"{self.path}: no such notebook")
        cur = await (await self._db()).execute(
            "SELECT state FROM anode_checkpoints WHERE notebook = %s ORDER BY seq DESC LIMIT 1",
            (self.id,),
        )
        row = await cur.fetchone()
        self.state = State.decode(row[0]) if row else State()
        self._fold(await self._fetch(self.state.t.head, None))
        if self.keeps_document:
            await self._load_document()

    async def close(self) -> None:
        await self._conn.close()

    async def _db(self) -> psycopg.AsyncConnection[Any]:
        """Our connection, made again if it was lost (the database restarted, or
        an operator ended it): what was committed meanwhile is read by seq, and
        the lead, which lived in the old session, is taken again by `lead`."""
        if self._conn.closed or self._conn.broken:
            self._leading = False
            self._conn = await connect(self.url)
        return self._conn

    @property
    def leading(self) -> bool:
        """Whether this process holds the notebook's lead (see `lead`)."""
        return self._leading and not (self._conn.closed or self._conn.broken)

    async def lead(self) -> bool:
        """Try to become the one process that runs this notebook's runtimes and
        writes its file: a session advisory lock, freed when this connection
        ends (the process died, or its connection was cut)."""
        if not self.leading:
            async with self._lock:
                cur = await (await self._db()).execute(
                    "SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", ("anode:" + self.id,)
                )
                row = await cur.fetchone()
                self._leading = bool(row and row[0])
        return self._leading

    @property
    def head(self) -> int:
        return self.state.t.head

    # -- catching up ---------------------------------------------------------
    async def _fetch(self, after: int, upto: int | None, limit: int | None = None) -> list[Row]:
        sql = f"SELECT {_COLUMNS} FROM anode_events WHERE notebook = %s AND seq > %s"
        params: list[Any] = [self.id, after]
        if upto is not None:
            sql += " AND seq <= %s"
            params.append(upto)
        sql += " ORDER BY seq"
        if limit is not None:
            sql += " LIMIT %s"
            params.append(limit)
        cur = await (await self._db()).execute(sql, params)
        return list(await cur.fetchall())

    def _fold(self, rows: list[Row]) -> None:
        """Committed rows (ours after their commit, or another replica's) into the
        state, the document and the recent rows."""
        if not rows:
            return
        fold_all(self.state, decode_rows(rows))
        self._recent.extend(rows)
        if self.document is not None:
            self._doc_since_snapshot += apply_document_rows(
                self.document, [(r[2], r[3]) for r in rows]
            )

    async def refresh(self) -> bool:
        """Fold what other replicas appended; whether the head moved."""
        async with self._lock:
            before = self.head
            await self._catch_up()
        return self.head != before

    # -- the document ----------------------------------------------------------
    async def _load_document(self) -> None:
        """The document from its latest snapshot (if any) and the document events
        after it; None while the log has neither (nobody has asked for it yet).
        A snapshot is written after the append it follows: without one, the events."""
        db = await self._db()
        cur = await db.execute(
            "SELECT seq, state FROM anode_doc_snapshots WHERE notebook = %s", (self.id,)
        )
        row = await cur.fetchone()
        cur = await db.execute(
            "SELECT name, args FROM anode_events WHERE notebook = %s AND seq > %s "
            "AND seq <= %s AND name = ANY(%s) ORDER BY seq",
            (self.id, row[0] if row else 0, self.head, list(DOC_EVENTS)),
        )
        updates = list(await cur.fetchall())
        self._has_snapshot = row is not None
        if row is None and not updates:
            self.document = None
            return
        doc = NotebookDoc(row[1] if row else None)
        self._doc_since_snapshot = apply_document_rows(doc, updates)
        self.document = doc

    async def sync_document(self, who: Identity) -> int | None:
        """As `Store.sync_document`: the tables written into the document (the
        one another replica made, if there is one)."""
        if not self.keeps_document:
            raise StoreError(f"{self.path}: opened without its document")
        seqs = await self._append([], who, None, full=True)
        return seqs[0] if seqs else None

    # -- appending -----------------------------------------------------------
    async def push_json(self, raw: bytes, who: Identity, *, now: int | None = None) -> list[int]:
        return await self._append(decode_batch(raw, self.limits), who, now)

    async def push(
        self, items: Sequence[dict[str, Any]], who: Identity, *, now: int | None = None
    ) -> list[int]:
        return await self._append(convert_batch(list(items), self.limits), who, now)

    async def append(
        self, events: Sequence[tuple[str, Event]], who: Identity, *, now: int | None = None
    ) -> list[int]:
        return await self._append([(i, e, ENC.encode(e)) for i, e in events], who, now)

    async def _append(
        self, batch: list[Item], who: Identity, now: int | None, *, full: bool = False
    ) -> list[int]:
        unique_ids(batch)
        async with self._lock:
            # As the SQLite store: the fast path lets the unique index find a
            # retry; then the careful path looks the ids up first.
            for careful in (False, True):
                try:
                    return await self._append_locked(batch, who, now, careful, full)
                except (_SeenBefore, Refused) as err:
                    await self._undo_document()
                    if careful:
                        raise
                    last: BaseException = err
                except BaseException:
                    await self._undo_document()
                    raise
            raise last  # pragma: no cover - the careful pass returns or raises

    async def _append_locked(
        self, batch: list[Item], who: Identity, now: int | None, careful: bool, full: bool
    ) -> list[int]:
        if full:
            await self._catch_up()  # a projection of everything: from the latest tables
            if self.document is None:  # the log's first document: ours
                self.document = NotebookDoc()
                self._doc_since_snapshot = DOCUMENT_SNAPSHOT_EVERY  # its snapshot now
        while True:
            known = await self._known_ids(batch) if careful else {}
            if batch and len(known) == len(batch):
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
            title = self.state.t.notebook.title
            # Readers in this process see the state as committed until the commit.
            put_back = p.set_aside()
            first_snapshot = full and doc is not None and not self._has_snapshot
            if not p.rows and not first_snapshot:
                self._doc_touched = False
                return p.seqs
            if p.rows and not await self._write(p.rows, title):
                # Another replica appended since our head: its events first, then again.
                await self._undo_document()
                await self._catch_up()
                if full and self.document is None:
                    self.document = NotebookDoc()  # its first sync, again
                continue
            break
        # Committed: now the state, the recent rows and the counters move.
        before = self.head
        put_back()
        self._recent.extend(p.rows)
        self._doc_touched = False
        if doc is not None and (p.doc_events or full):
            self._doc_since_snapshot += p.doc_events
            if self._doc_since_snapshot >= DOCUMENT_SNAPSHOT_EVERY or not p.doc_events:
                await self._snapshot_document(doc)
        if before // CHECKPOINT_EVERY != self.head // CHECKPOINT_EVERY:
            await self._checkpoint()
        return p.seqs

    async def _write(self, rows: list[Row], title: str) -> bool:
        """Append `rows` after our head in one statement (its own transaction):
        False, and nothing written, if the head has moved."""
        # One push has one author and one time: only ids, names and args vary.
        _, _, _, _, client_id, user, at = rows[0]
        head = rows[-1][0]
        params = (
            *(head, title, self.id, self.head),
            *(self.head, client_id, user, at),
            *([r[1] for r in rows], [r[2] for r in rows], [r[3] for r in rows]),
            f"{self.id} {head}",
        )
        try:
            cur = await (await self._db()).execute(_APPEND, params)
        except pg_errors.UniqueViolation:
            raise _SeenBefore from None
        return await cur.fetchone() is not None

    async def _catch_up(self) -> None:
        rows = await self._fetch(self.head, None)
        self._fold(rows)
        if self.document is None and self.keeps_document and any(r[2] in DOC_EVENTS for r in rows):
            await self._load_document()  # another replica gave the log its document

    async def _snapshot_document(self, doc: NotebookDoc) -> None:
        """The document as of our head, so opening it applies few updates. A cache:
        written after the append it follows (a lost one costs a longer open)."""
        await (await self._db()).execute(
            "INSERT INTO anode_doc_snapshots (notebook, seq, state) VALUES (%s, %s, %s) "
            "ON CONFLICT (notebook) DO UPDATE SET seq = excluded.seq, state = excluded.state "
            "WHERE anode_doc_snapshots.seq < excluded.seq",
            (self.id, self.head, doc.encode()),
        )
        self._doc_since_snapshot = 0
        self._has_snapshot = True

    def _touch_document(self) -> None:
        self._doc_touched = True

    async def _undo_document(self) -> None:
        """After a refusal or a failed write: the document as the log has it."""
        if self._doc_touched:
            self._doc_touched = False
            await self._load_document()

    async def _checkpoint(self) -> None:
        """The folded state at the head, so a replica opens from it plus the tail."""
        await (await self._db()).execute(
            "INSERT INTO anode_checkpoints (notebook, seq, state) VALUES (%s, %s, %s) "
            "ON CONFLICT DO NOTHING",
            (self.id, self.head, self.state.encode()),
        )

    async def _known_ids(self, batch: list[Item]) -> dict[str, int]:
        cur = await (await self._db()).execute(
            "SELECT id, seq, name, args FROM anode_events WHERE notebook = %s AND id = ANY(%s)",
            (self.id, [b[0] for b in batch]),
        )
        return check_known(batch, list(await cur.fetchall()))

    # -- reading ---------------------------------------------------------------
    def cached_rows(self, after: int, limit: int | None = None) -> list[Row] | None:
        """The rows after `after` from memory, or None when they must be read."""
        recent = self._recent
        if after >= self.head:
            return []
        if not recent or recent[0][0] > after + 1 or recent[-1][0] != self.head:
            return None
        start = after + 1 - recent[0][0]
        end = len(recent) if limit is None else min(len(recent), start + limit)
        return list(itertools.islice(recent, start, end))

    def cached_json(self, after: int, limit: int | None = None) -> list[bytes] | None:
        rows = self.cached_rows(after, limit)
        return None if rows is None else [envelope_json(r) for r in rows]

    async def events_json(self, after: int = 0, limit: int | None = None) -> list[bytes]:
        cached = self.cached_json(after, limit)
        if cached is not None:
            return cached
        return [envelope_json(r) for r in await self._fetch(after, self.head, limit)]

    async def events(self, after: int = 0, limit: int | None = None) -> list[Envelope]:
        return decode_rows(await self._fetch(after, self.head, limit))

    async def state_at(self, seq: int) -> State:
        """The state right after event `seq`: nearest checkpoint, then replay."""
        if seq < 0:
            raise ValueError("seq must be >= 0")
        if seq >= self.head:
            return self.state.copy()
        cur = await (await self._db()).execute(
            "SELECT state FROM anode_checkpoints WHERE notebook = %s AND seq <= %s "
            "ORDER BY seq DESC LIMIT 1",
            (self.id, seq),
        )
        row = await cur.fetchone()
        state = State.decode(row[0]) if row else State()
        return fold_all(state, await self.events(state.t.head, seq - state.t.head))

    async def replay_document(self) -> NotebookDoc:
        """The document from every update in the log, ignoring snapshots."""
        doc = NotebookDoc()
        apply_document_rows(doc, [(r[2], r[3]) for r in await self._fetch(0, self.head)])
        return doc

    async def replay(self) -> State:
        """The state folded from zero, ignoring every checkpoint."""
        return fold_all(State(), await self.events())


class PgHub(Hub):
    """A hub over a PostgreSQL store: appends and reads wait for the database;
    another replica's appends arrive by `notify` (LISTEN) or the poll."""

    def __init__(self, store: PgStore, *, poll_interval: float = 5.0) -> None:
        super().__init__(poll_interval=poll_interval)
        self.store: PgStore = store
        self._catching: asyncio.Future[None] | None = None
        self._wanted = 0  # the highest head another replica announced

    async def push_json(self, raw: bytes, who: Identity) -> list[int]:
        try:
            return await self.store.push_json(raw, who)
        finally:
            self.wake()

    async def append(self, events: Sequence[tuple[str, Event]], who: Identity) -> list[int]:
        try:
            return await self.store.append(events, who)
        finally:
            self.wake()

    async def refresh(self) -> None:
        try:
            moved = await self.store.refresh()
        except Exception as err:  # the database is away: the next poll or note tries again
            log.warning("%s: cannot read new events: %s", self.store.path, err)
            return
        if moved:
            self.wake()

    def notify(self, head: int) -> None:
        """Another replica committed up to `head`: read it and wake the waiters. One
        catch-up at a time; a notification that comes during one extends it (the
        rows it announces may have committed after that catch-up's read)."""
        self._wanted = max(self._wanted, head)
        if head > self.store.head and (self._catching is None or self._catching.done()):
            self._catching = asyncio.ensure_future(self._catch_up())

    async def _catch_up(self) -> None:
        while self.store.head < self._wanted:
            before = self.store.head
            await self.refresh()
            if self.store.head == before:
                return  # nothing more to read now: the poll looks again

    def cached_json(self, after: int, limit: int | None = None) -> list[bytes] | None:
        return self.store.cached_json(after, limit)

    def cached_events(self, after: int) -> list[Envelope]:
        rows = self.store.cached_rows(after)
        if rows is None:
            raise StoreError(f"{self.store.path}: events after {after} are not in memory")
        return decode_rows(rows)

    async def events_json(self, after: int = 0, limit: int | None = None) -> list[bytes]:
        return await self.store.events_json(after, limit)

    async def state_at(self, seq: int) -> State:
        return await self.store.state_at(seq)

    async def sync_document(self, who: Identity) -> int | None:
        try:
            return await self.store.sync_document(who)
        finally:
            self.wake()

    @property
    def leading(self) -> bool:
        return self.store.leading

    async def lead(self) -> bool:
        return await self.store.lead()

    async def close(self) -> None:
        await self.store.close()

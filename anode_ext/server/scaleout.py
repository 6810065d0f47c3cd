"""Several jupyter-server replicas serving the same notebooks from PostgreSQL.

Each replica keeps its own rooms; the database orders the logs (`PgStore`).
One listener connection per replica `LISTEN`s: a notification only says
which notebook moved and to what head, and the room reads the new rows by
seq. A lost listener reconnects and every open room catches up; a slow poll
in each room remains. Presence (which clients are connected where) is
written by every replica with a heartbeat, so the leader of a notebook never
ends a runtime session whose client is connected to another replica.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from pathlib import Path
from typing import Any

from ..log.errors import StoreError
from ..log.local import Hub
from ..log.postgres import CHANNEL, PgHub, PgStore, connect, create_schema
from ..log.validate import Limits
from .rooms import Notebooks, Room, RuntimeManager

log = logging.getLogger(__name__)

MESSAGES = "anode_message"  # NOTIFY payload: {"notebook", "message"} for every replica's clients

PRESENCE = """
CREATE TABLE IF NOT EXISTS anode_presence (
    replica text NOT NULL,
    notebook text NOT NULL,
    client_id text NOT NULL,
    seen_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (replica, notebook, client_id)
);
"""


class PgNotebooks(Notebooks):
    """The catalogue in PostgreSQL: every replica sees every notebook."""

    def __init__(
        self,
        url: str,
        limits: Limits,
        runtimes: RuntimeManager,
        *,
        heartbeat: float = 2.0,
        poll_interval: float = 5.0,
    ) -> None:
        super().__init__(Path("."), limits, runtimes)
        self.url = url
        self.replica = uuid.uuid4().hex
        self.heartbeat = heartbeat
        self.poll_interval = poll_interval
        self._conn: Any = None
        self._connecting = asyncio.Lock()
        self._by_id: dict[str, str] = {}  # notebook -> path, as far as seen
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Future[Any]] = set()
        # Saves asked of the leader and not yet done: (notebook, path) -> (head, done).
        self._saves: dict[tuple[str, str], list[tuple[int, asyncio.Future[None]]]] = {}

    async def start(self) -> None:
        try:
            await self._db()
        except Exception as err:  # the loops below and the next request try again
            log.warning("PostgreSQL is not reachable yet: %s", err)
        self._tasks = [
            asyncio.ensure_future(self._listen()),
            asyncio.ensure_future(self._presence()),
        ]

    async def _db(self) -> Any:
        """The catalogue's connection (again after a loss); the schema made on first use,
        whichever comes first: the server's start or a request."""
        async with self._connecting:
            if self._conn is None or self._conn.closed:
                conn = await connect(self.url)
                await create_schema(conn)
                await conn.execute(PRESENCE)
                self._conn = conn
        return self._conn

    # -- notebooks ---------------------------------------------------------------
    async def _open_hub(self, notebook_id: str) -> Hub:
        try:
            store = await PgStore.open(self.url, notebook_id, limits=self.limits, document=True)
        except StoreError as err:
            if "no such notebook" in str(err):
                raise KeyError(notebook_id) from None
            raise
        return PgHub(store, poll_interval=self.poll_interval)

    async def _create_hub(self, notebook_id: str) -> Hub:
        store = await PgStore.open(
            self.url, notebook_id, create=True, limits=self.limits, document=True
        )
        return PgHub(store, poll_interval=self.poll_interval)

    async def exists(self, notebook_id: str) -> bool:
        cur = await (await self._db()).execute(
            "SELECT 1 FROM anode_notebooks WHERE id = %s", (notebook_id,)
        )
        return await cur.fetchone() is not None

    async def list(self) -> list[dict[str, Any]]:
        cur = await (await self._db()).execute(
            "SELECT id, title, head FROM anode_notebooks ORDER BY id"
        )
        return [{"id": i, "title": t, "head": h} for i, t, h in await cur.fetchall()]

    # -- documents ---------------------------------------------------------------
    def path_of(self, notebook_id: str) -> str | None:
        return self._by_id.get(notebook_id)

    async def notebook_of(self, path: str) -> str | None:
        cur = await (await self._db()).execute(
            "SELECT notebook FROM anode_paths WHERE path = %s", (path,)
        )
        row = await cur.fetchone()
        if row is None:
            return None
        self._by_id[row[0]] = path
        return str(row[0])

    async def bind(self, path: str, notebook_id: str) -> str:
        """The first replica to bind a path wins; the others use its notebook."""
        db = await self._db()
        await db.execute(
            "INSERT INTO anode_paths (path, notebook) VALUES (%s, %s) ON CONFLICT DO NOTHING",
            (path, notebook_id),
        )
        found = await self.notebook_of(path)
        assert found is not None
        return found

    # -- fan-out between replicas ------------------------------------------------
    async def broadcast(self, room: Room, message: dict[str, Any]) -> None:
        """Through the database, so every replica's subscribers have it (this
        one's too: its listener hears its own notifications)."""
        await self._tell({"notebook": room.id, "message": message})

    async def _tell(self, note: dict[str, Any]) -> None:
        """A note to every replica's listener (this one's too)."""
        await (await self._db()).execute("SELECT pg_notify(%s, %s)", (MESSAGES, json.dumps(note)))

    async def _listen(self) -> None:
        """Wake the rooms other replicas' commits moved; reconnect when cut."""
        while True:
            try:
                conn = await connect(self.url, "anode-listener")
                try:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    await conn.execute(f"LISTEN {MESSAGES}")
                    # Whatever was committed while nobody listened: every room catches up.
                    for room in list(self.rooms.values()):
                        assert isinstance(room.hub, PgHub)
                        room.hub.notify(room.store.head + 1)
                    async for note in conn.notifies():
                        if note.channel == MESSAGES:
                            self._deliver(note.payload)
                            continue
                        notebook_id, _, head = note.payload.partition(" ")
                        moved = self.rooms.get(notebook_id)
                        if moved is not None and isinstance(moved.hub, PgHub):
                            moved.hub.notify(int(head))
                finally:
                    with contextlib.suppress(Exception):
                        await conn.close()
            except asyncio.CancelledError:
                raise
            except Exception as err:
                log.warning("the PostgreSQL listener was cut (%s); reconnecting", err)
                await asyncio.sleep(0.5)

    async def save_at_leader(self, room: Room, path: str, timeout: float = 15.0) -> None:
        """Ask whichever replica leads the notebook to write its file, and wait
        until it says it has written it at our head or later."""
        head = room.store.head
        done = asyncio.get_running_loop().create_future()
        key = (room.id, path)
        self._saves.setdefault(key, []).append((head, done))
        try:
            await self._tell({"notebook": room.id, "save": path})
            await asyncio.wait_for(done, timeout)
        except asyncio.TimeoutError:
            raise TimeoutError(
                f"no server leading notebook {room.id} wrote {path} in {timeout:g} s"
            ) from None
        finally:
            waiting = self._saves.get(key, [])
            if (head, done) in waiting:
                waiting.remove((head, done))

    async def _save_here(self, room: Room, path: str) -> None:
        assert self.on_save is not None
        try:
            await room.hub.refresh()  # at least the head the asking replica had
            await self.on_save(path, room)
        except Exception:
            log.exception("saving %s for another replica failed", path)

    def _deliver(self, payload: str) -> None:
        try:
            note = json.loads(payload)
            room = self.rooms.get(note["notebook"])
        except (ValueError, KeyError, TypeError):
            log.warning("a message on %s that is not ours: %.100s", MESSAGES, payload)
            return
        if room is None:
            return
        if "save" in note:  # another replica's Save: the leader writes
            if room.hub.leading and self.on_save is not None:
                task = asyncio.ensure_future(self._save_here(room, str(note["save"])))
                self._background.add(task)
                task.add_done_callback(self._background.discard)
            return
        message = note["message"]
        if message.get("type") == "saved":
            for head, done in self._saves.get((room.id, message.get("path")), []):
                if message.get("head", 0) >= head and not done.done():
                    done.set_result(None)
        room.broadcast(message)

    async def _presence(self) -> None:
        """Say who is connected here; learn who is connected elsewhere."""
        while True:
            try:
                await self._beat()
            except asyncio.CancelledError:
                raise
            except Exception as err:
                log.warning("presence heartbeat failed: %s", err)
                self._conn = None
            await asyncio.sleep(self.heartbeat)

    async def _beat(self) -> None:
        db = await self._db()
        rows = [
            (self.replica, nb, client) for nb, room in self.rooms.items() for client in room.here()
        ]
        async with db.transaction():
            await db.execute("DELETE FROM anode_presence WHERE replica = %s", (self.replica,))
            if rows:
                async with db.cursor() as cur:
                    await cur.executemany(
                        "INSERT INTO anode_presence (replica, notebook, client_id) "
                        "VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                        rows,
                    )
        fresh = max(3 * self.heartbeat, 1.0)
        cur = await db.execute(
            "SELECT notebook, client_id FROM anode_presence WHERE replica <> %s "
            "AND seen_at > now() - make_interval(secs => %s)",
            (self.replica, fresh),
        )
        elsewhere: dict[str, set[str]] = {}
        for notebook_id, client in await cur.fetchall():
            elsewhere.setdefault(notebook_id, set()).add(client)
        for notebook_id, room in self.rooms.items():
            room.elsewhere = elsewhere.get(notebook_id, set())

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await super().close()
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.execute(
                    "DELETE FROM anode_presence WHERE replica = %s", (self.replica,)
                )
            await self._conn.close()

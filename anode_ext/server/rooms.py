"""Open notebooks: one room per notebook, its store, its subscribers, its runtime.

Every write on the server (REST, websocket, the in-process runtime agent)
goes through the room's `LocalHub`, so one waiter sees every append and fans
it out. Subscribers pull from the store at their own cursor: a slow one falls
behind (and is closed past a bound) without holding back anyone else.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

from ..log import Identity, Store
from ..log import catalogue as ev
from ..log.errors import Refused
from ..log.local import Hub, LocalHub
from ..log.rules import ALL_RIGHTS, USER_RIGHTS
from ..log.state import HELD_STATES
from ..log.sync import events_message
from ..log.validate import Limits
from ..runtime.agent import Agent
from ..runtime.host import PyodideHost

log = logging.getLogger(__name__)

SERVER = Identity("anode-server", "anode-server", ALL_RIGHTS)


class Connection(Protocol):
    """What a room needs from a subscriber's transport (a websocket)."""

    def write(self, message: str) -> Awaitable[None]:
        """Send now (or raise if closed); the awaitable is done once it is flushed."""
        ...

    def close(self, code: int, reason: str) -> None: ...


class Subscriber:
    """A live reader of a room, at its own cursor."""

    def __init__(
        self, room: Room, conn: Connection, after: int, max_lag: int, *, person: bool = True
    ) -> None:
        self.room = room
        self.conn = conn
        self.cursor = after
        self.max_lag = max_lag
        self.person = person  # someone is looking (a kernel or a runtime is not)
        self._task: asyncio.Task[None] | None = None
        self._answered = False

    def wake(self) -> None:
        """Send what is new at once, in this call (a reader has an append before
        its writer has the acknowledgement); the rest after each flush."""
        if self._task is not None and not self._task.done():
            return  # the task reads the head again after its flush
        flushed = self._next()
        if flushed is not None:
            self._task = asyncio.ensure_future(self._drain(flushed))

    def _next(self) -> Awaitable[None] | None:
        """Write the next page; None when up to date or gone."""
        store = self.room.store
        if self._answered and self.cursor >= store.head:
            return None
        if store.head - self.cursor > self.max_lag:
            self.room.unsubscribe(self)
            self.conn.close(1013, f"too far behind; reconnect and pull from {self.cursor}")
            return None
        page = self.room.page(self.cursor)
        if page is None:  # not in memory: read it, then go on from the flush
            return asyncio.ensure_future(self._read(self.cursor))
        return self._send(*page)

    def _send(self, count: int, message: str) -> Awaitable[None] | None:
        """Write one page of `count` events; None when the connection is gone."""
        # The first answer to a pull goes out even when empty: its head tells
        # the client it is up to date.
        self._answered = True
        try:
            flushed = self.conn.write(message)
        except Exception:  # closed meanwhile
            self.room.unsubscribe(self)
            return None
        self.cursor += count
        return flushed

    async def _read(self, cursor: int) -> None:
        """Send a page the hub had to read (a reconnect far behind)."""
        count, message = await self.room.read(cursor)
        if cursor == self.cursor:
            flushed = self._send(count, message)
            if flushed is not None:
                await flushed

    async def _drain(self, flushed: Awaitable[None] | None) -> None:
        while flushed is not None:
            try:
                await flushed
            except Exception:  # closed meanwhile
                self.room.unsubscribe(self)
                return
            flushed = self._next()


async def _quietly(write: Awaitable[None]) -> None:
    with contextlib.suppress(Exception):
        await write


class Room:
    def __init__(
        self,
        notebook_id: str,
        hub: Hub,
        runtimes: RuntimeManager,
        on_change: list[Callable[[Room], None]] | None = None,
    ) -> None:
        self.id = notebook_id
        self.hub = hub
        self.store = hub.store
        self.on_change = on_change if on_change is not None else []
        self._sending: set[asyncio.Future[None]] = set()
        self.runtimes = runtimes
        self.subscribers: set[Subscriber] = set()
        self.agent: Agent | None = None
        self.agent_task: asyncio.Task[None] | None = None
        self.last_activity = time.monotonic()
        self.connections: dict[str, int] = {}  # client id -> open sync connections
        self.elsewhere: set[str] = set()  # client ids connected to other replicas
        self._missing: dict[str, float] = {}  # live session -> since when unconnected
        self._page: tuple[tuple[int, int], int, str] | None = None
        self._admin = self.hub.client(Identity("anode-server", f"server-{notebook_id}", ALL_RIGHTS))
        self._task = asyncio.ensure_future(self._follow())

    def page(self, cursor: int) -> tuple[int, str] | None:
        """The events after `cursor` (up to 2,000) as one message, and how many;
        None when the hub must read them first (`read`). Subscribers at the same
        cursor (most of them, live) share one read and one encoding."""
        head = self.store.head
        if self._page is not None and self._page[0] == (cursor, head):
            return self._page[1], self._page[2]
        raws = self.hub.cached_json(cursor, 2000)
        if raws is None:
            return None
        message = events_message(raws, head).decode()
        self._page = ((cursor, head), len(raws), message)
        return len(raws), message

    async def read(self, cursor: int) -> tuple[int, str]:
        head = self.store.head
        raws = await self.hub.events_json(cursor, 2000)
        return len(raws), events_message(raws, head).decode()

    def fanout(self, last: Subscriber | None = None) -> None:
        """Send every subscriber what is new now: people first, then kernels and
        runtimes, then `last` (the writer's own), so a keystroke reaches the
        other tabs first (each send is a system call that wakes a process)."""
        subs = sorted(self.subscribers, key=lambda sub: (sub is last, not sub.person))
        for sub in subs:
            sub.wake()

    def broadcast(self, message: dict[str, Any]) -> None:
        """A message to every subscriber beside the events (the file was saved, say)."""
        text = json.dumps(message)
        for sub in list(self.subscribers):
            try:
                flushed = sub.conn.write(text)
            except Exception:  # closed meanwhile: its handler unsubscribes it
                continue
            task = asyncio.ensure_future(_quietly(flushed))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    def attach(self, client_id: str) -> None:
        self.connections[client_id] = self.connections.get(client_id, 0) + 1
        self.last_activity = time.monotonic()

    def detach(self, client_id: str) -> None:
        left = self.connections.get(client_id, 0) - 1
        if left > 0:
            self.connections[client_id] = left
        else:
            self.connections.pop(client_id, None)
        self.last_activity = time.monotonic()

    def subscribe(
        self, conn: Connection, after: int, max_lag: int, *, person: bool = True
    ) -> Subscriber:
        sub = Subscriber(self, conn, after, max_lag, person=person)
        self.subscribers.add(sub)
        self.last_activity = time.monotonic()
        sub.wake()
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        self.subscribers.discard(sub)
        self.last_activity = time.monotonic()

    async def _follow(self) -> None:
        """Fan every append out, end lost runtimes, give queued work a runtime."""
        head = self.store.head
        step = min(5.0, max(0.2, self.runtimes.lost_after / 4))
        while True:
            if await self.lead():
                await self._reap()
                self.runtimes.ensure(self)
            await self.hub.wait(head, step)
            if self.store.head != head:
                head = self.store.head
                self.last_activity = time.monotonic()
                self.fanout()
                for callback in self.on_change:
                    callback(self)

    async def lead(self) -> bool:
        """Whether this server leads the notebook (alone, always): only the
        leader starts and reaps runtimes and writes the file."""
        try:
            return await self.hub.lead()
        except Exception as err:  # the database is away: try again next time
            log.warning("notebook %s: cannot take the lead: %s", self.id, err)
            return False

    def here(self) -> set[str]:
        """Client ids connected to this server, and our own runtime agent."""
        here = set(self.connections)
        if self.agent is not None and self.agent_task is not None and not self.agent_task.done():
            here.add(self.agent.client.identity.client_id)
        return here

    def _alive(self) -> set[str]:
        """Client ids that are here now, or (by presence) at another replica."""
        return self.here() | self.elsewhere

    async def _reap(self) -> None:
        """A live session whose client has no connection for `lost_after` s is
        over (process gone, network lost, missed pings): ending it fails what it
        was running and gives its queue to the next runtime."""
        now = time.monotonic()
        here = self._alive()
        live = {
            rt.session_id: rt for rt in self.store.state.t.runtimes.values() if rt.state == "live"
        }
        for sid in list(self._missing):
            if sid not in live or live[sid].client_id in here:
                del self._missing[sid]
        for sid, rt in live.items():
            if rt.client_id in here:
                continue
            since = self._missing.setdefault(sid, now)
            if now - since < self.runtimes.lost_after:
                continue
            lost = f"runtime lost: no connection for {self.runtimes.lost_after:g} s"
            with contextlib.suppress(Refused):
                await self._admin.push(
                    [(uuid.uuid4().hex, ev.RuntimeSessionEnded(session_id=sid, reason=lost))]
                )
            self._missing.pop(sid, None)

    def has_work(self) -> bool:
        t = self.store.state.t
        return self.store.state.first_pending() is not None or any(
            e.state in HELD_STATES for e in t.executions.values()
        )

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        await self.runtimes.stop(self)
        for sub in list(self.subscribers):
            sub.conn.close(1001, "the notebook was closed")
        await self.hub.close()


class RuntimeManager:
    """Starts a runtime where work is queued, keeps warm hosts ready, stops idle ones."""

    def __init__(
        self,
        new_host: Callable[[], PyodideHost],
        *,
        warm: int = 1,
        idle_timeout: float = 600.0,
        lost_after: float = 30.0,
    ) -> None:
        self.new_host = new_host
        self.warm = warm
        self.idle_timeout = idle_timeout
        self.lost_after = lost_after
        self.pool: list[PyodideHost] = []
        self._filling: asyncio.Task[None] | None = None
        self._closed = False
        self._stopping: set[asyncio.Future[None]] = set()

    def fill(self) -> None:
        if self._closed or (self._filling is not None and not self._filling.done()):
            return
        if len(self.pool) < self.warm:
            self._filling = asyncio.ensure_future(self._fill())

    async def _fill(self) -> None:
        while len(self.pool) < self.warm and not self._closed:
            host = self.new_host()
            try:
                await host.start()
            except Exception as err:
                log.warning("a warm runtime failed to boot: %s", err)
                return
            self.pool.append(host)

    def _take(self) -> PyodideHost:
        """A booted host from the pool if there is one (then refill), else a new one."""
        while self.pool:
            host = self.pool.pop(0)
            if host.alive:
                self.fill()
                return host
        self.fill()
        return self.new_host()

    def ensure(self, room: Room) -> None:
        running = room.agent_task is not None and not room.agent_task.done()
        if running:
            idle = time.monotonic() - room.last_activity > self.idle_timeout
            if idle and not room.has_work():
                self._stopping.add(asyncio.ensure_future(self.stop(room)))
            return
        if room.store.state.first_pending() is None or self._closed:
            return
        if any(rt.state == "live" for rt in room.store.state.t.runtimes.values()):
            return  # a runtime elsewhere (a kernel, `anode runtime`) is on it
        client = room.hub.client(
            Identity("anode-runtime", f"runtime-{uuid.uuid4().hex}", USER_RIGHTS)
        )
        room.agent = Agent(client, self._take)
        room.agent_task = asyncio.ensure_future(self._run(room, room.agent))

    async def _run(self, room: Room, agent: Agent) -> None:
        try:
            await agent.run()
        except Exception:
            log.exception("the runtime of notebook %s stopped", room.id)

    async def stop(self, room: Room) -> None:
        if room.agent is not None:
            await room.agent.stop()
        if room.agent_task is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(room.agent_task, 15)
        room.agent = room.agent_task = None

    async def close(self) -> None:
        self._closed = True
        for host in self.pool:
            await host.close()
        self.pool.clear()


class Notebooks:
    """The catalogue: one SQLite store per notebook in `store_dir`, rooms for the
    open ones, and which document (path) each notebook is."""

    def __init__(self, store_dir: Path, limits: Limits, runtimes: RuntimeManager) -> None:
        self.store_dir = store_dir
        self.limits = limits
        self.runtimes = runtimes
        self.rooms: dict[str, Room] = {}
        self.on_change: list[Callable[[Room], None]] = []
        # Writes a document's file now (the documents part sets it).
        self.on_save: Callable[[str, Room], Awaitable[Any]] | None = None
        self._opening: dict[str, asyncio.Future[Room]] = {}
        self._paths: tuple[int, dict[str, str], dict[str, str]] | None = None

    async def start(self) -> None:
        """Connections and watchers a catalogue needs (none for files)."""

    def path(self, notebook_id: str) -> Path:
        if not notebook_id or not all(c.isalnum() or c in "-_" for c in notebook_id):
            raise KeyError(notebook_id)
        return self.store_dir / f"{notebook_id}.anode"

    async def room(self, notebook_id: str) -> Room:
        """The notebook's room, opened on first use; KeyError if there is no such notebook."""
        room = self.rooms.get(notebook_id)
        if room is not None:
            return room
        opening = self._opening.get(notebook_id)
        if opening is None:
            opening = self._opening[notebook_id] = asyncio.ensure_future(self._open(notebook_id))
            opening.add_done_callback(lambda _: self._opening.pop(notebook_id, None))
        return await asyncio.shield(opening)

    async def _open(self, notebook_id: str) -> Room:
        hub = await self._open_hub(notebook_id)
        if hub.store.document is not None:
            # Whatever was appended without the document (the CLI, a kernel
            # of its own) is written into it before anyone reads it.
            await hub.sync_document(SERVER)
        room = self.rooms[notebook_id] = self._room(notebook_id, hub)
        return room

    async def _open_hub(self, notebook_id: str) -> Hub:
        path = self.path(notebook_id)
        if not path.is_file():
            raise KeyError(notebook_id)
        return LocalHub(Store.open(path, limits=self.limits, document=True), poll_interval=1.0)

    def _room(self, notebook_id: str, hub: Hub) -> Room:
        return Room(notebook_id, hub, self.runtimes, self.on_change)

    async def create(self) -> Room:
        notebook_id = uuid.uuid4().hex
        room = self.rooms[notebook_id] = self._room(
            notebook_id, await self._create_hub(notebook_id)
        )
        return room

    async def _create_hub(self, notebook_id: str) -> Hub:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        store = Store.open(self.path(notebook_id), create=True, limits=self.limits, document=True)
        return LocalHub(store, poll_interval=1.0)

    async def exists(self, notebook_id: str) -> bool:
        try:
            return self.path(notebook_id).is_file()
        except KeyError:
            return False

    async def list(self) -> list[dict[str, Any]]:
        out = []
        for path in sorted(self.store_dir.glob("*.anode")) if self.store_dir.is_dir() else []:
            room = self.rooms.get(path.stem)
            if room is not None:
                state = room.store.state
            else:
                try:
                    with Store.open(path, readonly=True) as store:
                        state = store.state
                except Exception:
                    continue
            out.append({"id": path.stem, "title": state.t.notebook.title, "head": state.t.head})
        return out

    # -- documents (paths under the root dir) and their notebooks -----------------
    @property
    def _index_path(self) -> Path:
        return self.store_dir / "paths.json"

    def _index(self) -> dict[str, str]:
        """paths.json, read again only when it changed (every change of a log asks it)."""
        try:
            mtime = self._index_path.stat().st_mtime_ns
        except OSError:
            return {}
        if self._paths is None or self._paths[0] != mtime:
            try:
                index: dict[str, str] = json.loads(self._index_path.read_text())
            except (OSError, ValueError):
                return {}
            self._paths = (mtime, index, {v: k for k, v in index.items()})
        return dict(self._paths[1])

    def path_of(self, notebook_id: str) -> str | None:
        """The document a notebook is, as far as this server knows."""
        self._index()
        return self._paths[2].get(notebook_id) if self._paths is not None else None

    async def notebook_of(self, path: str) -> str | None:
        found = self._index().get(path)
        return found if found is not None and await self.exists(found) else None

    async def bind(self, path: str, notebook_id: str) -> str:
        """Make `notebook_id` the document's log; the one that is, if another won."""
        index = self._index()
        index[path] = notebook_id
        self.store_dir.mkdir(parents=True, exist_ok=True)
        tmp = self._index_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(index, indent=1, sort_keys=True))
        os.replace(tmp, self._index_path)
        return notebook_id

    async def broadcast(self, room: Room, message: dict[str, Any]) -> None:
        """A message beside the events to every subscriber of the notebook, on
        every server that serves it (here, one)."""
        room.broadcast(message)

    async def save_at_leader(self, room: Room, path: str) -> None:
        """Have the server that leads the notebook write its file (alone: this one)."""
        if self.on_save is not None:
            await self.on_save(path, room)

    async def close_idle(self, idle_seconds: float) -> None:
        now = time.monotonic()
        for notebook_id, room in list(self.rooms.items()):
            busy = room.subscribers or room.has_work()
            if not busy and now - room.last_activity > idle_seconds:
                del self.rooms[notebook_id]
                await room.close()

    async def close(self) -> None:
        for room in list(self.rooms.values()):
            await room.close()
        self.rooms.clear()
        await self.runtimes.close()

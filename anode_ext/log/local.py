"""In-process clients of one store, woken when the log moves.

The runtime agent, the kernel and `anode run` all talk to a log through the
same small interface (`LogClient`): push typed events, read the confirmed
state, wait for the head to move. `LocalLog` is that interface over an
embedded `Store`; the websocket sync client (server extension) is the other.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Protocol

from .catalogue import COMM_KINDS, Event
from .document import NotebookDoc
from .envelope import Envelope
from .rules import Identity
from .state import State
from .store import Store


class LogClient(Protocol):
    """What a participant needs from a notebook's log."""

    identity: Identity

    @property
    def state(self) -> State:
        """The confirmed state; read it, never change it."""
        ...

    async def push(self, events: Sequence[tuple[str, Event]]) -> list[int]:
        """Append atomically; raises `Refused` (nothing appended) or returns the seqs."""
        ...

    async def wait(self, head: int, timeout: float | None = None) -> bool:
        """Until the log's head passes `head`; False on timeout."""
        ...

    def events(self, after: int) -> list[Envelope]:
        """The confirmed events with `seq > after`, in order (as far as this client has them)."""
        ...


_COMMS = tuple(COMM_KINDS.values())


def comm_events(client: LogClient, after: int, upto: int) -> list[Envelope]:
    """The comm events (open, message, close) with `after < seq <= upto`: what the
    runtime hands Python and the kernel publishes. Nothing is read when the
    state's hint says no comm event came since `after`."""
    if upto <= after or client.state.comm_seq <= after:
        return []
    out = []
    for env in client.events(after):
        if env.seq > upto:
            break
        if isinstance(env.args, _COMMS):
            out.append(env)
    return out


class LogStore(Protocol):
    """What the readers of a hub's store use without waiting (both stores have it)."""

    path: str
    state: State
    document: NotebookDoc | None
    keeps_document: bool

    @property
    def head(self) -> int: ...


class Hub:
    """One store shared by several in-process identities, with change wake-ups.
    The store's own I/O (appending, reading the past, catching up with other
    writers) goes through the hub, which knows whether it must wait for it."""

    store: LogStore

    def __init__(self, *, poll_interval: float = 0.5) -> None:
        self.poll_interval = poll_interval
        self._waiters: set[asyncio.Future[None]] = set()

    def client(self, identity: Identity) -> LocalLog:
        return LocalLog(self, identity)

    def wake(self) -> None:
        """Wake every waiter (after a push, or when someone knows the log moved)."""
        waiters, self._waiters = self._waiters, set()
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    async def wait(self, head: int, timeout: float | None = None) -> bool:
        """Until the head passes `head`; False on timeout."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while self.store.head <= head:
            step = self.poll_interval
            if deadline is not None:
                step = min(step, deadline - loop.time())
                if step <= 0:
                    return False
            fut: asyncio.Future[None] = loop.create_future()
            self._waiters.add(fut)
            try:
                done, _ = await asyncio.wait({fut}, timeout=step)
            finally:
                self._waiters.discard(fut)
            if not done:
                await self.refresh()
        return True

    async def push_json(self, raw: bytes, who: Identity) -> list[int]:
        """Append a wire batch (`[{id, name, args}]`) for `who`; raises `Refused`."""
        raise NotImplementedError

    async def append(self, events: Sequence[tuple[str, Event]], who: Identity) -> list[int]:
        raise NotImplementedError

    async def refresh(self) -> None:
        """Fold what other processes appended."""
        raise NotImplementedError

    def cached_json(self, after: int, limit: int | None = None) -> list[bytes] | None:
        """Envelopes after `after` if they can be had without waiting, else None."""
        raise NotImplementedError

    def cached_events(self, after: int) -> list[Envelope]:
        raise NotImplementedError

    async def events_json(self, after: int = 0, limit: int | None = None) -> list[bytes]:
        raise NotImplementedError

    async def state_at(self, seq: int) -> State:
        raise NotImplementedError

    async def sync_document(self, who: Identity) -> int | None:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    # Several servers may serve one log: one of them leads it (runs its
    # runtimes, writes its file). Alone, a hub always leads.
    @property
    def leading(self) -> bool:
        return True

    async def lead(self) -> bool:
        return True


class LocalHub(Hub):
    """A hub over an embedded SQLite store. Writers in other processes are
    noticed by polling (`poll_interval`): SQLite has no cross-process notification."""

    def __init__(self, store: Store, *, poll_interval: float = 0.5) -> None:
        super().__init__(poll_interval=poll_interval)
        self.store: Store = store

    async def push_json(self, raw: bytes, who: Identity) -> list[int]:
        try:
            return self.store.push_json(raw, who)
        finally:
            self.wake()

    async def append(self, events: Sequence[tuple[str, Event]], who: Identity) -> list[int]:
        try:
            return self.store.append(events, who)
        finally:
            self.wake()

    async def refresh(self) -> None:
        self.store.refresh()

    def cached_json(self, after: int, limit: int | None = None) -> list[bytes] | None:
        return self.store.events_json(after, limit)

    def cached_events(self, after: int) -> list[Envelope]:
        return self.store.events(after)

    async def events_json(self, after: int = 0, limit: int | None = None) -> list[bytes]:
        return self.store.events_json(after, limit)

    async def state_at(self, seq: int) -> State:
        return self.store.state_at(seq)

    async def sync_document(self, who: Identity) -> int | None:
        return self.store.sync_document(who)

    async def close(self) -> None:
        self.store.close()


class LocalLog:
    """A `LogClient` for one identity over a `LocalHub`."""

    def __init__(self, hub: Hub, identity: Identity) -> None:
        self.hub = hub
        self.identity = identity

    @property
    def state(self) -> State:
        return self.hub.store.state

    async def push(self, events: Sequence[tuple[str, Event]]) -> list[int]:
        return await self.hub.append(events, self.identity)

    async def wait(self, head: int, timeout: float | None = None) -> bool:
        return await self.hub.wait(head, timeout)

    def events(self, after: int) -> list[Envelope]:
        return self.hub.cached_events(after)

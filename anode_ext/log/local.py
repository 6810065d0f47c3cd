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

from .catalogue import Event
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


class LocalHub:
    """One store shared by several in-process identities, with change wake-ups.

    Writers in other processes are noticed by polling (`poll_interval`): SQLite
    has no cross-process notification.
    """

    def __init__(self, store: Store, *, poll_interval: float = 0.5) -> None:
        self.store = store
        self.poll_interval = poll_interval
        self._waiters: set[asyncio.Future[None]] = set()

    def client(self, identity: Identity) -> LocalLog:
        return LocalLog(self, identity)

    def wake(self) -> None:
        """Wake every waiter (after a push, or when someone knows the file moved)."""
        waiters, self._waiters = self._waiters, set()
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    def push_json(self, raw: bytes, who: Identity) -> list[int]:
        """Append a wire batch (`[{id, name, args}]`) for `who`; raises `Refused`."""
        try:
            return self.store.push_json(raw, who)
        finally:
            self.wake()

    async def _push(self, events: Sequence[tuple[str, Event]], who: Identity) -> list[int]:
        try:
            return self.store.append(events, who)
        finally:
            self.wake()

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
                self.store.refresh()
        return True


class LocalLog:
    """A `LogClient` for one identity over a `LocalHub`."""

    def __init__(self, hub: LocalHub, identity: Identity) -> None:
        self.hub = hub
        self.identity = identity

    @property
    def state(self) -> State:
        return self.hub.store.state

    async def push(self, events: Sequence[tuple[str, Event]]) -> list[int]:
        return await self.hub._push(events, self.identity)

    async def wait(self, head: int, timeout: float | None = None) -> bool:
        return await self.hub.wait(head, timeout)

    def events(self, after: int) -> list[Envelope]:
        return list(self.hub.store.events(after))

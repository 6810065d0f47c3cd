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


class LocalHub:
    """One store shared by several in-process identities, with change wake-ups.

    Writers in other processes are noticed by polling (`poll_interval`): SQLite
    has no cross-process notification.
    """

    def __init__(self, store: Store, *, poll_interval: float = 0.5) -> None:
        self.store = store
        self.poll_interval = poll_interval
        self._moved = asyncio.Condition()

    def client(self, identity: Identity) -> LocalLog:
        return LocalLog(self, identity)

    async def _push(self, events: Sequence[tuple[str, Event]], who: Identity) -> list[int]:
        seqs = self.store.append(events, who)
        async with self._moved:
            self._moved.notify_all()
        return seqs

    async def _wait(self, head: int, timeout: float | None) -> bool:
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            if self.store.head > head:
                return True
            step = self.poll_interval
            if deadline is not None:
                step = min(step, deadline - loop.time())
                if step <= 0:
                    return False
            async with self._moved:
                try:
                    await asyncio.wait_for(self._moved.wait(), step)
                except asyncio.TimeoutError:
                    self.store.refresh()


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
        return await self.hub._wait(head, timeout)

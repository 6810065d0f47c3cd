"""A `PgStore` driven from synchronous test code, with the SQLite store's methods."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Coroutine
from typing import Any, TypeVar

from anode_ext.log.postgres import PgStore

T = TypeVar("T")


class SyncPg:
    def __init__(self, url: str, notebook_id: str | None = None, **kw: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self.id = notebook_id or uuid.uuid4().hex
        kw.setdefault("create", notebook_id is None)
        self.pg = self.run(PgStore.open(url, self.id, **kw))

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    @property
    def state(self):  # type: ignore[no-untyped-def]
        return self.pg.state

    @property
    def document(self):  # type: ignore[no-untyped-def]
        return self.pg.document

    @property
    def head(self) -> int:
        return self.pg.head

    def push(self, items, who, **kw):  # type: ignore[no-untyped-def]
        return self.run(self.pg.push(items, who, **kw))

    def push_json(self, raw, who, **kw):  # type: ignore[no-untyped-def]
        return self.run(self.pg.push_json(raw, who, **kw))

    def append(self, events, who, **kw):  # type: ignore[no-untyped-def]
        return self.run(self.pg.append(events, who, **kw))

    def sync_document(self, who):  # type: ignore[no-untyped-def]
        return self.run(self.pg.sync_document(who))

    def events(self, after: int = 0, limit: int | None = None):  # type: ignore[no-untyped-def]
        return self.run(self.pg.events(after, limit))

    def events_json(self, after: int = 0, limit: int | None = None) -> list[bytes]:
        return self.run(self.pg.events_json(after, limit))

    def refresh(self) -> bool:
        return self.run(self.pg.refresh())

    def replay(self):  # type: ignore[no-untyped-def]
        return self.run(self.pg.replay())

    def replay_document(self):  # type: ignore[no-untyped-def]
        return self.run(self.pg.replay_document())

    def state_at(self, seq: int):  # type: ignore[no-untyped-def]
        return self.run(self.pg.state_at(seq))

    def close(self) -> None:
        self.run(self.pg.close())
        self.loop.close()

    def __enter__(self) -> SyncPg:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""Fault tests against real `jupyter server` processes: SIGKILL mid-stream, many writers."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

from anode_ext.log import catalogue as ev
from anode_ext.log.remote import RemoteLog
from anode_ext.log.view import state_json

from .real import TOKEN, Server


def _id() -> str:
    return uuid.uuid4().hex


def all_events(server: Server, nb: str) -> list[dict[str, Any]]:
    status, page = server.call(f"/anode/api/notebooks/{nb}/events?after=0")
    assert status == 200
    return list(page["events"])


def test_a_server_killed_during_1000_pushes_loses_and_doubles_nothing(tmp_path: Path) -> None:
    server = Server(tmp_path, "--AnodeApp.warm_runtimes=0").start()
    acked: dict[str, int] = {}
    ids = [_id() for _ in range(1000)]

    def restart() -> None:
        server.kill()
        server.start()

    async def main() -> tuple[RemoteLog, RemoteLog]:
        writer = await RemoteLog(server.url, nb, token=TOKEN, max_backoff=0.5).start()
        watcher = await RemoteLog(server.url, nb, token=TOKEN, max_backoff=0.5).start()
        loop = asyncio.get_running_loop()
        restarting = None
        for i, event_id in enumerate(ids):
            (seq,) = await writer.push([(event_id, ev.NotebookMetadataSet(key=f"k{i}", value=i))])
            acked[event_id] = seq
            if i == 300:
                restarting = loop.run_in_executor(None, restart)
        assert restarting is not None
        await restarting
        assert await watcher.wait(1000, 60)
        return writer, watcher

    try:
        nb = server.create()
        writer, watcher = asyncio.run(main())
        assert writer.reconnects >= 1 and watcher.reconnects >= 1
        events = all_events(server, nb)
        assert [e["seq"] for e in events] == list(range(1, 1002))  # gap-free
        by_id = {e["id"]: e["seq"] for e in events}
        assert len(by_id) == 1001  # nothing twice
        assert all(by_id[i] == seq for i, seq in acked.items())  # every ack kept its seq
        state = server.state(nb)
        assert state_json(writer.state, nb) == state_json(watcher.state, nb) == state
    finally:
        server.stop()


def test_twenty_concurrent_writers_give_one_gap_free_log(tmp_path: Path) -> None:
    server = Server(tmp_path, "--AnodeApp.warm_runtimes=0").start()

    async def write(client: RemoteLog, w: int) -> None:
        for b in range(100):  # 1,000 events per writer, in batches of 10
            batch = [
                (
                    _id(),
                    ev.CellCreated(
                        cell_id=f"w{w}-{b * 10 + i}", cell_type="code", source="", position="V"
                    ),
                )
                for i in range(10)
            ]
            await client.push(batch)

    async def main() -> list[RemoteLog]:
        clients = [await RemoteLog(server.url, nb, token=TOKEN).start() for _ in range(20)]
        await asyncio.gather(*(write(c, w) for w, c in enumerate(clients)))
        for c in clients:
            assert await c.wait(20_000, 60)
        return clients

    try:
        nb = server.create()
        clients = asyncio.run(main())
        events = all_events(server, nb)
        assert [e["seq"] for e in events] == list(range(1, 20_002))
        assert len({e["id"] for e in events}) == 20_001
        state = server.state(nb)
        for c in clients:
            assert state_json(c.state, nb) == state
        cells = clients[0].state.t.cells
        assert len(cells) == 20_000 and all(f"w{w}-999" in cells for w in range(20))
    finally:
        server.stop()

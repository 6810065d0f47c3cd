"""Two jupyter-server replicas on one PostgreSQL (real processes): one order for
every client, nothing acknowledged lost when a replica or the listener dies,
one claim when two replicas race."""

from __future__ import annotations

import asyncio
import json
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest

from anode_ext.log import catalogue as ev
from anode_ext.log.errors import Refused
from anode_ext.log.remote import RemoteLog

from .real import TOKEN, Server


def _id() -> str:
    return uuid.uuid4().hex


def replica(root: Path, url: str, *options: str) -> Server:
    return Server(
        root,
        f"--AnodeApp.database_url={url}",
        "--AnodeApp.warm_runtimes=0",
        "--AnodeApp.presence_interval=0.5",
        *options,
    )


@pytest.fixture
def two(tmp_path: Path, postgres_url: str, request: Any) -> Any:
    options = getattr(request, "param", ())
    servers = [replica(tmp_path, postgres_url, *options).start() for _ in range(2)]
    yield servers
    for s in servers:
        s.stop()


def stored(server: Server, nb: str) -> list[dict[str, Any]]:
    status, body = server.call(f"/anode/api/notebooks/{nb}/events")
    assert status == 200, body
    return list(body["events"])


def assert_holds_once(server: Server, nb: str, head: int, acked: dict[str, int]) -> None:
    """The log is seqs 1..head with no id twice, and every acknowledged event is
    in it at the seq its acknowledgement gave."""
    events = stored(server, nb)
    assert [e["seq"] for e in events] == list(range(1, head + 1))
    seq_of = {e["id"]: e["seq"] for e in events}
    assert len(seq_of) == len(events)
    for event_id, seq in acked.items():
        assert seq_of[event_id] == seq, event_id


def test_a_replica_killed_mid_run_loses_nothing_acknowledged(two: list[Server]) -> None:
    a, b = two
    nb = a.create()
    acked: dict[str, int] = {}

    async def write(client: RemoteLog, name: str, kill_at: int | None) -> None:
        loop = asyncio.get_running_loop()
        for i in range(500):
            event_id = f"{name}-{i}"
            (seq,) = await client.push([(event_id, ev.NotebookMetadataSet(key=name, value=i))])
            acked[event_id] = seq
            if i == kill_at:
                await loop.run_in_executor(None, b.kill)

    async def main() -> int:
        urls = {"a": [a.url, b.url], "b": [b.url, a.url]}
        subs = [
            await RemoteLog(urls[side], nb, token=TOKEN, max_backoff=0.3).start()
            for side in ("a", "b")
            for _ in range(50)
        ]
        writers = [
            await RemoteLog(urls[side], nb, token=TOKEN, max_backoff=0.3).start()
            for side in ("a", "b")
        ]
        await asyncio.gather(write(writers[0], "wa", None), write(writers[1], "wb", 250))
        head = max(acked.values())
        for client in subs + writers:
            assert await client.wait(head - 1, 60), client.state.t.head
        final = subs[0].state.t
        assert all(c.state.t == final for c in subs + writers)  # one order everywhere
        assert sum(c.reconnects > 0 for c in subs) >= 50  # b's clients moved to a
        for c in subs + writers:
            await c.close()
        return head

    head = asyncio.run(main())
    assert len(acked) == 1000
    assert_holds_once(a, nb, head, acked)


# The safety poll is set to a minute: only the listener can deliver in time.
@pytest.mark.parametrize("two", [("--AnodeApp.database_poll_interval=60",)], indirect=True)
def test_the_listener_cut_mid_run_loses_nothing(two: list[Server], postgres_url: str) -> None:
    a, b = two
    nb = a.create()

    async def main() -> None:
        import psycopg

        watcher = await RemoteLog(b.url, nb, token=TOKEN).start()
        writer = await RemoteLog(a.url, nb, token=TOKEN).start()
        for i in range(200):
            await writer.push([(_id(), ev.NotebookMetadataSet(key="k", value=i))])
            if i == 100:
                async with await psycopg.AsyncConnection.connect(
                    postgres_url, autocommit=True
                ) as db:
                    cur = await db.execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE application_name = 'anode-listener'"
                    )
                    assert len(await cur.fetchall()) == 2  # one per replica
        head = writer.state.t.head
        assert await watcher.wait(head - 1, 15), (watcher.state.t.head, head)
        assert watcher.state.t == writer.state.t
        # and after the cut, the reconnected listener still delivers at once
        await writer.push([(_id(), ev.NotebookMetadataSet(key="k", value="after"))])
        assert await watcher.wait(head, 5)
        await watcher.close()
        await writer.close()

    asyncio.run(main())


def test_a_claim_race_between_replicas_appends_one_claim(two: list[Server]) -> None:
    a, b = two
    nb = a.create()

    async def main() -> None:
        ra = await RemoteLog(a.url, nb, token=TOKEN).start()
        rb = await RemoteLog(b.url, nb, token=TOKEN).start()
        sa, sb = _id(), _id()
        await ra.push([(_id(), ev.RuntimeSessionStarted(session_id=sa, info={}))])
        await rb.push([(_id(), ev.RuntimeSessionStarted(session_id=sb, info={}))])
        for _ in range(20):
            x = _id()
            await ra.push([(_id(), ev.ExecutionRequested(execution_id=x, cell_id=None, code="1"))])
            assert await rb.wait(ra.state.t.head - 1, 10)
            claims = await asyncio.gather(
                ra.push([(_id(), ev.ExecutionAssigned(execution_id=x, session_id=sa))]),
                rb.push([(_id(), ev.ExecutionAssigned(execution_id=x, session_id=sb))]),
                return_exceptions=True,
            )
            refused = [c for c in claims if isinstance(c, Refused)]
            assert len(refused) == 1, claims
            # finish it, so the next request is the first pending one
            winner = sa if not isinstance(claims[0], Refused) else sb
            client = ra if winner == sa else rb
            await client.push(
                [
                    (_id(), ev.ExecutionStarted(execution_id=x, execution_count=1)),
                    (_id(), ev.ExecutionCompleted(execution_id=x, status="ok")),
                ]
            )
        await ra.close()
        await rb.close()

    asyncio.run(main())
    assigned = [e for e in stored(a, nb) if e["name"] == "v1.ExecutionAssigned"]
    assert len(assigned) == 20
    assert json.dumps(stored(a, nb)) == json.dumps(stored(b, nb))


@pytest.mark.parametrize("two", [("--AnodeApp.runtime_lost_after=2",)], indirect=True)
def test_the_leader_killed_mid_execution_fails_it_and_the_survivor_runs_the_rest(
    two: list[Server],
) -> None:
    from anode_ext.runtime.run import wait_final, wait_state

    a, b = two  # a opens the notebook first: a leads it
    nb = a.create()  # a opens the notebook first: a leads it

    async def main() -> None:
        user = await RemoteLog([b.url], nb, token=TOKEN).start()
        slow, rest = _id(), _id()
        await user.push(
            [
                (_id(), ev.CellCreated(cell_id="c", cell_type="code", source="", position="V")),
                (
                    _id(),
                    ev.ExecutionRequested(
                        execution_id=slow,
                        cell_id="c",
                        code="import time\nfor _ in range(600): time.sleep(0.1)",
                    ),
                ),
                (_id(), ev.ExecutionRequested(execution_id=rest, cell_id="c", code="6 * 7")),
            ]
        )
        assert await wait_state(user, slow, {"executing"}, 120)
        session = user.state.t.executions[slow].session_id
        a.kill()
        assert await wait_final(user, slow, 60)
        row = user.state.t.executions[slow]
        assert row.state == "failed" and "runtime lost" in (row.reason or ""), row
        assert user.state.t.runtimes[session].state == "ended"
        assert await wait_final(user, rest, 120)
        done = user.state.t.executions[rest]
        assert done.state == "completed" and done.session_id != session
        await user.close()

    asyncio.run(main())
    state = b.state(nb)
    cell = next(c for c in state["cells"] if c["id"] == "c")
    assert cell["outputs"][0]["data"]["text/plain"] == "42"


def test_clients_through_haproxy_survive_a_replica_killed(
    two: list[Server], tmp_path: Path
) -> None:
    from anode_ext.cluster import start_haproxy

    a, b = two
    proxy = start_haproxy(tmp_path, [("r1", a.port), ("r2", b.port)])
    try:
        nb = a.create()
        acked: dict[str, int] = {}

        async def main() -> int:
            subs = [
                await RemoteLog(proxy.url, nb, token=TOKEN, max_backoff=0.3).start()
                for _ in range(20)
            ]
            writer = await RemoteLog(proxy.url, nb, token=TOKEN, max_backoff=0.3).start()
            loop = asyncio.get_running_loop()
            for i in range(300):
                event_id = f"w-{i}"
                meta = ev.NotebookMetadataSet(key="w", value=i)
                (acked[event_id],) = await writer.push([(event_id, meta)])
                if i == 150:
                    await loop.run_in_executor(None, b.kill)
            head = writer.state.t.head
            for client in subs:
                assert await client.wait(head - 1, 60), client.state.t.head
                assert client.state.t == writer.state.t
            assert any(c.reconnects for c in subs)  # some were on the killed replica
            for c in [*subs, writer]:
                await c.close()
            return head

        assert_holds_once(a, nb, asyncio.run(main()), acked)
    finally:
        proxy.stop()


@pytest.mark.parametrize("two", [("--AnodeApp.runtime_lost_after=1",)], indirect=True)
def test_a_runtime_connected_to_another_replica_is_not_reaped(two: list[Server]) -> None:
    a, b = two
    nb = a.create()  # a leads, and reaps

    async def main() -> None:
        watcher = await RemoteLog(a.url, nb, token=TOKEN).start()
        runtime = await RemoteLog(b.url, nb, token=TOKEN).start()
        sid = _id()
        await runtime.push([(_id(), ev.RuntimeSessionStarted(session_id=sid, info={}))])
        await asyncio.sleep(4)  # four times runtime_lost_after
        assert watcher.state.t.runtimes[sid].state == "live"
        await runtime.close()  # now it is gone from every replica
        for _ in range(100):
            if watcher.state.t.runtimes[sid].state == "ended":
                break
            await asyncio.sleep(0.1)
        assert "runtime lost" in (watcher.state.t.runtimes[sid].reason or "")
        await watcher.close()

    asyncio.run(main())


def test_a_document_opened_on_both_replicas_is_one_log_and_the_leader_writes_it(
    two: list[Server], tmp_path: Path
) -> None:
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    a, b = two
    nbformat.write(new_notebook(cells=[new_code_cell("1", id="c1")]), tmp_path / "doc.ipynb")

    async def both() -> list[Any]:
        loop = asyncio.get_running_loop()
        return list(
            await asyncio.gather(
                *(
                    loop.run_in_executor(None, s.call, "/anode/api/documents?path=doc.ipynb")
                    for s in (a, b)
                )
            )
        )

    answers = asyncio.run(both())
    assert [status for status, _ in answers] == [200, 200], answers
    ids = {body["id"] for _, body in answers}
    assert len(ids) == 1  # the race made one log
    (nb,) = ids
    edit = {"id": _id(), "name": "v1.CellSourceChanged", "args": {"cell_id": "c1", "source": "2"}}

    async def saved_on(server: Server, push: bool) -> dict[str, Any]:
        """A tab on each replica hears that the leader saved the file (the one
        that is not the leader only through the database)."""
        from tornado.httpclient import HTTPRequest
        from tornado.websocket import websocket_connect

        url = f"ws://127.0.0.1:{server.port}/anode/api/notebooks/{nb}/sync"
        auth = {"Authorization": f"token {TOKEN}"}
        ws = await websocket_connect(HTTPRequest(url, headers=auth))
        await ws.write_message(json.dumps({"type": "pull", "after": 0}))
        if push:
            await asyncio.sleep(0.5)  # the other tab is listening
            await ws.write_message(json.dumps({"type": "push", "req": 1, "events": [edit]}))
        while True:
            msg = json.loads(await asyncio.wait_for(ws.read_message(), 30))
            if msg["type"] == "saved":
                ws.close()
                return dict(msg)

    async def both_tabs() -> list[dict[str, Any]]:
        return list(await asyncio.gather(saved_on(a, False), saved_on(b, True)))

    for saved in asyncio.run(both_tabs()):
        assert saved["path"] == "doc.ipynb" and saved["head"] >= 2
    assert nbformat.read(tmp_path / "doc.ipynb", as_version=4).cells[0].source == "2"
    # Save (JupyterLab's PUT) on either replica: the leader writes, and each
    # answers once the file holds what that replica had.
    for k, server in enumerate((a, b)):
        change = {"cell_id": "c1", "source": f"saved {k}"}
        edit = {"id": _id(), "name": "v1.CellSourceChanged", "args": change}
        assert server.call(f"/anode/api/notebooks/{nb}/events", {"events": [edit]})[0] == 200
        req = urllib.request.Request(
            f"{server.url}/anode/api/documents?path=doc.ipynb",
            method="PUT",
            headers={"Authorization": f"token {TOKEN}"},
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            assert resp.status == 200
        cells = nbformat.read(tmp_path / "doc.ipynb", as_version=4).cells
        assert cells[0].source == f"saved {k}"


def test_the_stores_connections_cut_mid_run_lose_nothing(
    two: list[Server], postgres_url: str
) -> None:
    a, b = two
    nb = a.create()
    acked: dict[str, int] = {}

    async def main() -> int:
        import psycopg

        watcher = await RemoteLog(b.url, nb, token=TOKEN, max_backoff=0.3).start()
        writer = await RemoteLog(a.url, nb, token=TOKEN, max_backoff=0.3).start()
        for i in range(300):
            event_id = f"w-{i}"
            meta = ev.NotebookMetadataSet(key="w", value=i)
            (acked[event_id],) = await writer.push([(event_id, meta)])
            if i in (100, 200):  # every store and catalogue connection of both replicas
                async with await psycopg.AsyncConnection.connect(
                    postgres_url, autocommit=True
                ) as db:
                    await db.execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE application_name = 'anode'"
                    )
        head = writer.state.t.head
        assert await watcher.wait(head - 1, 60)
        assert watcher.state.t == writer.state.t
        await watcher.close()
        await writer.close()
        return head

    assert_holds_once(b, nb, asyncio.run(main()), acked)


@pytest.mark.parametrize("two", [("--AnodeApp.runtime_lost_after=1",)], indirect=True)
def test_an_idle_notebook_whose_connections_were_cut_still_serves(
    two: list[Server], postgres_url: str
) -> None:
    """The cut is met by a room's poll, not by a push: the room goes on."""
    a, b = two
    nb = a.create()

    async def main() -> None:
        import psycopg

        watcher = await RemoteLog(b.url, nb, token=TOKEN).start()
        writer = await RemoteLog(a.url, nb, token=TOKEN).start()
        async with await psycopg.AsyncConnection.connect(postgres_url, autocommit=True) as db:
            await db.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = 'anode'"
            )
        await asyncio.sleep(2)  # several polls of both rooms meet the cut
        await writer.push([(_id(), ev.NotebookMetadataSet(key="k", value="after"))])
        assert await watcher.wait(writer.state.t.head - 1, 10)
        assert watcher.state.t == writer.state.t
        await watcher.close()
        await writer.close()

    asyncio.run(main())


def test_a_client_far_behind_gets_the_events_a_replica_must_read(two: list[Server]) -> None:
    """b opens the notebook from its checkpoint (seq 2000): a pull from 0 is read
    from the database, page by page, in order."""
    a, b = two
    nb = a.create()
    for _ in range(21):
        batch = [
            {"id": _id(), "name": "v1.NotebookMetadataSet", "args": {"key": "k", "value": i}}
            for i in range(100)
        ]
        assert a.call(f"/anode/api/notebooks/{nb}/events", {"events": batch})[0] == 200

    async def main() -> None:
        reader = await RemoteLog(b.url, nb, token=TOKEN).start()
        assert await reader.wait(2100, 30)
        assert reader.state.t.head == 2101
        await reader.close()

    asyncio.run(main())

"""The remote LogClient against a real extension (pytest-jupyter's in-process server)."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest

from anode_ext.log import Refused
from anode_ext.log import catalogue as ev
from anode_ext.log.remote import RemoteError, RemoteLog
from anode_ext.log.view import state_json


@pytest.fixture
def connect(jp_serverapp: Any, jp_http_port: int, jp_base_url: str) -> Any:
    url = f"http://127.0.0.1:{jp_http_port}{jp_base_url}"
    clients: list[RemoteLog] = []

    async def make(nb: str, token: str | None = None, **kw: Any) -> RemoteLog:
        client = RemoteLog(url, nb, token=token or jp_serverapp.identity_provider.token, **kw)
        clients.append(client)
        return await client.start()

    yield make
    for client in clients:
        asyncio.get_event_loop().run_until_complete(client.close())


async def new_notebook(jp_fetch: Any, title: str = "remote") -> str:
    resp = await jp_fetch(
        "anode", "api", "notebooks", method="POST", body=json.dumps({"title": title})
    )
    return str(json.loads(resp.body)["id"])


def _id() -> str:
    return uuid.uuid4().hex


def cell(cell_id: str, source: str = "x = 1") -> tuple[str, ev.Event]:
    return _id(), ev.CellCreated(cell_id=cell_id, cell_type="code", source=source, position="V")


async def server_state(jp_fetch: Any, nb: str) -> dict[str, Any]:
    return dict(json.loads((await jp_fetch("anode", "api", "notebooks", nb)).body))


async def test_start_catches_up_and_push_is_visible_at_once(jp_fetch: Any, connect: Any) -> None:
    nb = await new_notebook(jp_fetch, "caught up")
    client = await connect(nb)
    assert client.state.t.head == 1 and client.state.t.notebook.title == "caught up"
    (seq,) = await client.push([cell("c1")])
    assert seq == 2 and client.state.t.cells["c1"].source == "x = 1"
    assert client.state.t.runtimes == {}


async def test_two_clients_converge_with_the_server(jp_fetch: Any, connect: Any) -> None:
    nb = await new_notebook(jp_fetch)
    a, b = await connect(nb), await connect(nb)

    async def write(client: RemoteLog, prefix: str) -> None:
        for i in range(20):
            await client.push([cell(f"{prefix}{i}", f"{prefix} = {i}")])

    await asyncio.gather(write(a, "a"), write(b, "b"))
    head = (await server_state(jp_fetch, nb))["head"]
    assert head == 41
    for client in (a, b):
        assert await client.wait(head - 1, 30)
    assert state_json(a.state, nb) == state_json(b.state, nb) == await server_state(jp_fetch, nb)


async def test_a_refused_push_raises_and_appends_nothing(jp_fetch: Any, connect: Any) -> None:
    nb = await new_notebook(jp_fetch)
    client = await connect(nb)
    claim = ev.ExecutionAssigned(execution_id="nope", session_id="nobody")
    with pytest.raises(Refused) as info:
        await client.push([cell("ok"), (_id(), claim)])
    assert info.value.index == 1 and info.value.status == 409
    assert (await server_state(jp_fetch, nb))["head"] == 1


async def test_a_dropped_connection_loses_and_doubles_nothing(jp_fetch: Any, connect: Any) -> None:
    nb = await new_notebook(jp_fetch)
    client = await connect(nb)
    watcher = await connect(nb)

    async def drop_now_and_then() -> None:
        for _ in range(5):
            await asyncio.sleep(0.05)
            if client._conn is not None:
                client._conn.close()

    pushes = asyncio.gather(*(client.push([cell(f"c{i}")]) for i in range(100)))
    await asyncio.gather(pushes, drop_now_and_then())
    assert client.reconnects >= 1
    state = await server_state(jp_fetch, nb)
    assert state["head"] == 101  # every cell once, however often it was sent
    assert sorted(c["id"] for c in state["cells"]) == sorted(f"c{i}" for i in range(100))
    assert await watcher.wait(100, 30)
    assert state_json(watcher.state, nb) == state_json(client.state, nb) == state


async def test_refusals_of_the_connection_are_clear(jp_fetch: Any, connect: Any) -> None:
    nb = await new_notebook(jp_fetch)
    with pytest.raises(RemoteError, match=r"forbidden|not authenticated"):
        await connect(nb, token="wrong")
    with pytest.raises(RemoteError, match="no such notebook"):
        await connect("no-such-notebook")

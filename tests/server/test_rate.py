"""A sync connection over its message rate: refused (429), nothing appended, a client that backs off gets through."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from anode_ext.log.remote import RemoteLog

from ..log.test_remote import cell, new_notebook
from .test_rest import body, event
from .test_ws import recv


@pytest.fixture
def anode_config() -> dict[str, object]:
    return {"max_messages_per_second": 5.0}


async def test_a_flood_is_refused_and_appends_only_what_was_accepted(
    jp_fetch: Any, jp_ws_fetch: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from anode_ext.server import handlers

    # The clock held still: the flood gets exactly the burst (twice the rate),
    # however fast or slow this machine is today.
    monkeypatch.setattr(handlers, "clock", lambda: 1000.0)
    nb = await new_notebook(jp_fetch)
    ws = await jp_ws_fetch("anode", "api", "notebooks", nb, "sync")
    for i in range(30):
        meta = event("NotebookMetadataSet", key=f"k{i}", value=i)
        await ws.write_message(json.dumps({"type": "push", "req": i, "events": [meta]}))
    answers = [await recv(ws) for _ in range(30)]
    ok = [a for a in answers if a["type"] == "push_ok"]
    refused = [a for a in answers if a["type"] == "push_refused"]
    assert len(ok) + len(refused) == 30
    assert len(ok) == 10 and [a["req"] for a in ok] == list(range(10))
    assert all(a["status"] == 429 and "rate limit" in a["reason"] for a in refused)
    state = body(await jp_fetch("anode", "api", "notebooks", nb))
    assert state["head"] == 1 + len(ok)
    ws.close()


async def test_the_client_backs_off_and_gets_through(
    jp_fetch: Any, jp_serverapp: Any, jp_http_port: int, jp_base_url: str
) -> None:
    nb = await new_notebook(jp_fetch)
    url = f"http://127.0.0.1:{jp_http_port}{jp_base_url}"
    client = await RemoteLog(url, nb, token=jp_serverapp.identity_provider.token).start()
    try:
        await asyncio.gather(*(client.push([cell(f"c{i}")]) for i in range(25)))
        assert len(client.state.t.cells) == 25
        assert client.throttled > 0  # it was refused on the way, and got through
    finally:
        await client.close()

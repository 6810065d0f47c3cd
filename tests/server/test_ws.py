"""The websocket sync protocol, rights, and a runtime started by the server."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.websocket import websocket_connect

from .test_rest import body, create, event, push


async def recv(ws: Any, timeout: float = 30) -> dict[str, Any]:
    raw = await asyncio.wait_for(ws.read_message(), timeout)
    assert raw is not None, "the server closed the websocket"
    return dict(json.loads(raw))


async def events_until(ws: Any, seq: int, timeout: float = 60) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    while not got or got[-1]["seq"] < seq:
        msg = await recv(ws, timeout)
        if msg["type"] == "events":
            got += msg["events"]
    return got


async def test_pull_then_live_and_push(jp_fetch: Any, jp_ws_fetch: Any) -> None:
    nb = await create(jp_fetch, {"title": "ws"})
    a = await jp_ws_fetch("anode", "api", "notebooks", nb, "sync")
    b = await jp_ws_fetch("anode", "api", "notebooks", nb, "sync")
    for ws in (a, b):
        await ws.write_message(json.dumps({"type": "pull", "after": 0}))
        first = await events_until(ws, 1)
        assert [e["name"] for e in first] == ["v1.NotebookInitialized"]
    e = event("CellCreated", cell_id="c1", cell_type="code", source="x", position="V")
    await a.write_message(json.dumps({"type": "push", "req": 7, "events": [e]}))
    answers = []
    while len(answers) < 2:
        msg = await recv(a)
        answers.append(msg["type"])
        if msg["type"] == "push_ok":
            assert msg == {"type": "push_ok", "req": 7, "seqs": [2]}
    assert sorted(answers) == ["events", "push_ok"]
    live = await events_until(b, 2)
    assert live[-1]["id"] == e["id"] and live[-1]["user"]
    a.close()
    b.close()


async def test_resume_from_a_cursor_repeats_nothing(jp_fetch: Any, jp_ws_fetch: Any) -> None:
    nb = await create(jp_fetch)
    for i in range(5):
        await push(jp_fetch, nb, event("NotebookMetadataSet", key=f"k{i}", value=i))
    ws = await jp_ws_fetch("anode", "api", "notebooks", nb, "sync")
    await ws.write_message(json.dumps({"type": "pull", "after": 3}))
    got = await events_until(ws, 6)
    assert [e["seq"] for e in got] == [4, 5, 6]
    ws.close()


async def test_bad_messages_and_refusals_leave_the_log_unchanged(
    jp_fetch: Any, jp_ws_fetch: Any
) -> None:
    nb = await create(jp_fetch)
    ws = await jp_ws_fetch("anode", "api", "notebooks", nb, "sync")
    for bad in [
        "not json",
        json.dumps({"type": "dance"}),
        json.dumps({"type": "pull", "after": -1}),
    ]:
        await ws.write_message(bad)
        msg = await recv(ws)
        assert msg["type"] == "error" and msg["reason"]
    claim = event("ExecutionAssigned", execution_id="nope", session_id="s")
    await ws.write_message(json.dumps({"type": "push", "req": "r", "events": [claim]}))
    msg = await recv(ws)
    assert msg["type"] == "push_refused" and msg["req"] == "r" and msg["index"] == 0
    assert body(await jp_fetch("anode", "api", "notebooks", nb))["head"] == 1
    ws.close()


async def test_no_token_cannot_open_the_websocket(jp_fetch: Any, jp_ws_fetch: Any) -> None:
    nb = await create(jp_fetch)
    with pytest.raises(HTTPClientError) as info:
        await jp_ws_fetch(
            "anode", "api", "notebooks", nb, "sync", headers={"Authorization": "token nope"}
        )
    assert info.value.code == 403


async def test_an_execution_requested_over_rest_runs_on_a_started_runtime(
    jp_fetch: Any, jp_ws_fetch: Any
) -> None:
    nb = await create(jp_fetch)
    ws = await jp_ws_fetch("anode", "api", "notebooks", nb, "sync")
    await ws.write_message(json.dumps({"type": "pull", "after": 0}))
    x = uuid.uuid4().hex
    await push(
        jp_fetch,
        nb,
        event(
            "CellCreated",
            cell_id="c1",
            cell_type="code",
            source="print('from the runtime')",
            position="V",
        ),
        event("ExecutionRequested", execution_id=x, cell_id="c1", code="print('from the runtime')"),
    )
    seen: list[dict[str, Any]] = []
    while not any(e["name"] == "v1.ExecutionCompleted" for e in seen):
        msg = await recv(ws, 240)
        if msg["type"] == "events":
            seen += msg["events"]
    names = [e["name"] for e in seen]
    assert "v1.RuntimeSessionStarted" in names and "v1.ExecutionStarted" in names
    out = next(e for e in seen if e["name"] == "v1.OutputAppended")
    assert out["args"]["output"] == {
        "output_type": "stream",
        "name": "stdout",
        "text": "from the runtime\n",
    }
    state = body(await jp_fetch("anode", "api", "notebooks", nb))
    assert state["cells"][0]["outputs"][0]["text"] == "from the runtime\n"
    assert state["executions"][0]["state"] == "completed"
    ws.close()


async def test_a_foreign_origin_is_refused(
    jp_fetch: Any, jp_http_port: int, jp_base_url: str
) -> None:
    # Browsers authenticate with the login cookie: that is where origin matters
    # (jupyter-server skips the check for token-authenticated requests).
    nb = await create(jp_fetch)
    resp = await jp_fetch("anode", "api", "notebooks")
    cookie = "; ".join(c.split(";")[0] for c in resp.headers.get_list("Set-Cookie"))
    assert cookie, "the server set no login cookie"
    url = f"ws://127.0.0.1:{jp_http_port}{jp_base_url}anode/api/notebooks/{nb}/sync"

    async def connect(origin: str) -> Any:
        headers = {"Cookie": cookie, "Origin": origin}
        return await websocket_connect(HTTPRequest(url, headers=headers))

    with pytest.raises(HTTPClientError) as info:
        await connect("http://evil.example")
    assert info.value.code == 403
    ws = await connect(f"http://127.0.0.1:{jp_http_port}")  # the server's own origin
    await ws.write_message(json.dumps({"type": "pull", "after": 0}))
    assert (await recv(ws))["type"] == "events"
    ws.close()

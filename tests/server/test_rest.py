"""Every REST endpoint and refusal, through jupyter-server's own test fixtures."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError


def body(resp: Any) -> Any:
    return json.loads(resp.body)


async def create(jp_fetch: Any, payload: dict[str, Any] | None = None) -> str:
    resp = await jp_fetch(
        "anode", "api", "notebooks", method="POST", body=json.dumps(payload or {})
    )
    assert resp.code == 201
    return str(body(resp)["id"])


def event(name: str, **args: Any) -> dict[str, Any]:
    return {"id": uuid.uuid4().hex, "name": f"v1.{name}", "args": args}


async def push(jp_fetch: Any, nb: str, *events: dict[str, Any]) -> Any:
    return await jp_fetch(
        "anode",
        "api",
        "notebooks",
        nb,
        "events",
        method="POST",
        body=json.dumps({"events": list(events)}),
    )


async def refused(jp_fetch: Any, nb: str, status: int, *events: dict[str, Any]) -> dict[str, Any]:
    with pytest.raises(HTTPClientError) as info:
        await push(jp_fetch, nb, *events)
    assert info.value.code == status
    assert info.value.response is not None
    return dict(json.loads(info.value.response.body))


async def test_create_list_get_and_export(jp_fetch: Any) -> None:
    nb = await create(jp_fetch, {"title": "first"})
    listed = body(await jp_fetch("anode", "api", "notebooks"))["notebooks"]
    assert {"id": nb, "title": "first", "head": 1} in listed
    cell = event("CellCreated", cell_id="c1", cell_type="code", source="1+1", position="V")
    assert body(await push(jp_fetch, nb, cell))["seqs"] == [2]
    state = body(await jp_fetch("anode", "api", "notebooks", nb))
    assert state["head"] == 2 and state["cells"][0]["source"] == "1+1"
    earlier = body(await jp_fetch("anode", "api", "notebooks", nb, params={"at": 1}))
    assert earlier["cells"] == []
    exported = body(await jp_fetch("anode", "api", "notebooks", nb, "export"))
    assert exported["nbformat"] == 4 and exported["cells"][0]["source"] == "1+1"


async def test_import_an_ipynb(jp_fetch: Any) -> None:
    from nbformat.v4 import new_code_cell, new_notebook

    nbnode = new_notebook(cells=[new_code_cell("x = 1")])
    nb = await create(jp_fetch, {"ipynb": nbnode, "title": "imported"})
    state = body(await jp_fetch("anode", "api", "notebooks", nb))
    assert [c["source"] for c in state["cells"]] == ["x = 1"]


async def test_events_paging_and_resume(jp_fetch: Any) -> None:
    nb = await create(jp_fetch)
    for i in range(5):
        await push(jp_fetch, nb, event("NotebookMetadataSet", key=f"k{i}", value=i))
    page = body(
        await jp_fetch("anode", "api", "notebooks", nb, "events", params={"after": 2, "limit": 2})
    )
    assert [e["seq"] for e in page["events"]] == [3, 4] and page["head"] == 6
    assert page["events"][0]["user"] and page["events"][0]["at"] > 0


async def test_refusals_append_nothing(jp_fetch: Any) -> None:
    nb = await create(jp_fetch)
    head = body(await jp_fetch("anode", "api", "notebooks", nb))["head"]
    ok = event("NotebookMetadataSet", key="a", value=1)
    r = await refused(jp_fetch, nb, 400, ok, event("NoSuchEvent"))
    assert r["index"] == 1 and "unknown event name" in r["reason"]
    r = await refused(jp_fetch, nb, 400, event("CellCreated", cell_id="c", cell_type="code"))
    assert r["index"] == 0
    r = await refused(
        jp_fetch, nb, 409, event("ExecutionAssigned", execution_id="x", session_id="s")
    )
    assert "no execution" in r["reason"]
    big = event("NotebookMetadataSet", key="big", value="x" * (2 << 20))
    await refused(jp_fetch, nb, 413, big)
    with pytest.raises(HTTPClientError) as info:
        await jp_fetch("anode", "api", "notebooks", nb, "events", method="POST", body="{not json")
    assert info.value.code == 400
    assert body(await jp_fetch("anode", "api", "notebooks", nb))["head"] == head


async def test_a_forged_user_is_ignored(jp_fetch: Any) -> None:
    nb = await create(jp_fetch)
    forged = {**event("NotebookMetadataSet", key="a", value=1), "user": "mallory", "client_id": "x"}
    with pytest.raises(HTTPClientError) as info:
        await push(jp_fetch, nb, forged)
    assert info.value.code == 400  # extra fields: refused, not trusted
    await push(jp_fetch, nb, event("NotebookMetadataSet", key="a", value=1))
    events = body(await jp_fetch("anode", "api", "notebooks", nb, "events"))["events"]
    assert {e["user"] for e in events} != {"mallory"}


async def test_a_retry_with_the_same_id_appends_nothing(jp_fetch: Any) -> None:
    nb = await create(jp_fetch)
    e = event("NotebookMetadataSet", key="a", value=1)
    first = body(await push(jp_fetch, nb, e))["seqs"]
    assert body(await push(jp_fetch, nb, e))["seqs"] == first
    assert body(await jp_fetch("anode", "api", "notebooks", nb))["head"] == first[0]


async def test_unknown_notebook_is_404(jp_fetch: Any) -> None:
    with pytest.raises(HTTPClientError) as info:
        await jp_fetch("anode", "api", "notebooks", "nope")
    assert info.value.code == 404


async def test_no_token_is_refused(jp_fetch: Any) -> None:
    with pytest.raises(HTTPClientError) as info:
        await jp_fetch("anode", "api", "notebooks", headers={"Authorization": ""})
    assert info.value.code == 403
    with pytest.raises(HTTPClientError) as info:
        await jp_fetch("anode", "api", "notebooks", headers={"Authorization": "token wrong"})
    assert info.value.code == 403


async def test_the_smaller_promises_of_the_api(jp_fetch: Any, jp_ws_fetch: Any) -> None:
    """DESIGN.md's API, point by point: the 201 reply's head; export as of a seq;
    404 for every route of an unknown notebook; the 413 body; the head in every
    websocket page, and an empty first answer to a pull at the head."""
    resp = await jp_fetch("anode", "api", "notebooks", method="POST", body="{}")
    created = body(resp)
    assert resp.code == 201 and created["head"] == 1
    nb = created["id"]
    cell = event("CellCreated", cell_id="c", cell_type="code", source="old", position="V")
    await push(jp_fetch, nb, cell)
    await push(jp_fetch, nb, event("CellSourceChanged", cell_id="c", source="new"))
    then = body(await jp_fetch("anode", "api", "notebooks", nb, "export", params={"at": 2}))
    now = body(await jp_fetch("anode", "api", "notebooks", nb, "export"))
    assert [c["source"] for c in then["cells"]] == ["old"]
    assert [c["source"] for c in now["cells"]] == ["new"]

    for route in ([], ["events"], ["export"], ["document"]):
        with pytest.raises(HTTPClientError) as info:
            await jp_fetch("anode", "api", "notebooks", "nope", *route)
        assert info.value.code == 404, route
    with pytest.raises(HTTPClientError) as info:
        await jp_ws_fetch("anode", "api", "notebooks", "nope", "sync")
    assert info.value.code == 404
    with pytest.raises(HTTPClientError) as info:
        await push(jp_fetch, "nope", cell)
    assert info.value.code == 404

    big = event("NotebookMetadataSet", key="big", value="x" * (2 << 20))
    r = await refused(jp_fetch, nb, 413, big)
    assert r["index"] == 0 and r["reason"]

    ws = await jp_ws_fetch("anode", "api", "notebooks", nb, "sync")
    await ws.write_message(json.dumps({"type": "pull", "after": 3}))
    first = json.loads(await ws.read_message())
    assert first == {"type": "events", "events": [], "head": 3}
    await push(jp_fetch, nb, event("NotebookMetadataSet", key="a", value=1))
    live = json.loads(await ws.read_message())
    assert live["head"] == 4 and [e["seq"] for e in live["events"]] == [4]
    ws.close()

"""Rights over REST and websocket alike: a read-only user may pull, not write
or execute; a read+execute user may queue and answer, not edit; every refused
push answers `{index, reason}`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from jupyter_server.auth.authorizer import Authorizer
from tornado.httpclient import HTTPClientError

from anode_ext.log import Identity, Store
from anode_ext.log import catalogue as ev


class ReadOnly(Authorizer):
    """`anode` rights from `RIGHTS` (each test sets them; the server is in-process)."""

    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        return resource != "anode" or action in RIGHTS


RIGHTS = {"read"}


@pytest.fixture(autouse=True)
def read_only() -> Any:
    RIGHTS.clear()
    RIGHTS.add("read")
    yield


@pytest.fixture
def jp_server_config(tmp_path: Path) -> dict[str, Any]:
    stores = tmp_path / "stores"
    stores.mkdir()
    with Store.open(stores / "shared.anode", create=True) as store:
        store.append([("e1", ev.NotebookInitialized(title="shared"))], Identity("owner", "o"))
    return {
        "ServerApp": {"jpserver_extensions": {"anode_ext": True}, "authorizer_class": ReadOnly},
        "AnodeApp": {"warm_runtimes": 0, "store_dir": str(stores)},
    }


async def test_read_only_user_reads_but_cannot_write(jp_fetch: Any, jp_ws_fetch: Any) -> None:
    listed = json.loads((await jp_fetch("anode", "api", "notebooks")).body)["notebooks"]
    assert listed == [{"id": "shared", "title": "shared", "head": 1}]
    state = json.loads((await jp_fetch("anode", "api", "notebooks", "shared")).body)
    assert state["title"] == "shared"
    with pytest.raises(HTTPClientError) as info:
        await jp_fetch("anode", "api", "notebooks", method="POST", body="{}")
    assert info.value.code == 403
    push = {
        "events": [{"id": "x", "name": "v1.NotebookMetadataSet", "args": {"key": "a", "value": 1}}]
    }
    with pytest.raises(HTTPClientError) as info:
        await jp_fetch(
            "anode", "api", "notebooks", "shared", "events", method="POST", body=json.dumps(push)
        )
    assert info.value.code == 403
    ws = await jp_ws_fetch("anode", "api", "notebooks", "shared", "sync")
    await ws.write_message(json.dumps({"type": "push", "req": 1, **push}))
    answer = json.loads(await ws.read_message())
    assert answer["type"] == "push_refused" and answer["status"] == 403
    await ws.write_message(json.dumps({"type": "pull", "after": 0}))
    got = json.loads(await ws.read_message())
    assert got["type"] == "events" and [e["seq"] for e in got["events"]] == [1]
    ws.close()


async def _post(jp_fetch: Any, events: list[dict[str, Any]]) -> tuple[int, dict[str, Any]]:
    try:
        r = await jp_fetch(
            "anode",
            "api",
            "notebooks",
            "shared",
            "events",
            method="POST",
            body=json.dumps({"events": events}),
        )
    except HTTPClientError as err:
        assert err.response is not None
        return err.code, json.loads(err.response.body)
    return r.code, json.loads(r.body)


async def test_read_execute_user_queues_over_rest_and_cannot_edit(jp_fetch: Any) -> None:
    RIGHTS.add("execute")
    run = {
        "id": "r1",
        "name": "v1.ExecutionRequested",
        "args": {"execution_id": "x1", "cell_id": None, "code": "1"},
    }
    status, body = await _post(jp_fetch, [run])
    assert status == 200 and body["seqs"] == [2]
    edit = {"id": "m1", "name": "v1.NotebookMetadataSet", "args": {"key": "a", "value": 1}}
    status, body = await _post(jp_fetch, [run, edit])
    assert status == 403 and body["index"] == 1 and "write" in body["reason"]
    state = json.loads((await jp_fetch("anode", "api", "notebooks", "shared")).body)
    assert state["head"] == 2 and state["metadata"] == {}


async def test_no_right_to_read_is_refused_with_index_and_reason(jp_fetch: Any) -> None:
    RIGHTS.clear()
    run = {
        "id": "r1",
        "name": "v1.ExecutionRequested",
        "args": {"execution_id": "x1", "cell_id": None, "code": "1"},
    }
    status, body = await _post(jp_fetch, [run])
    assert status == 403 and body["index"] == 0 and "not authorized" in body["reason"]


async def test_a_reader_mirrors_a_file_into_a_log_but_never_starts_one(
    jp_fetch: Any, jp_root_dir: Path
) -> None:
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    nbformat.write(new_notebook(cells=[new_code_cell("1")]), jp_root_dir / "there.ipynb")
    found = json.loads(
        (await jp_fetch("anode", "api", "documents", params={"path": "there.ipynb"})).body
    )
    assert found["path"] == "there.ipynb" and found["id"]
    with pytest.raises(HTTPClientError) as info:
        await jp_fetch("anode", "api", "documents", params={"path": "missing.ipynb"})
    assert info.value.code == 404
    assert not (jp_root_dir / "missing.ipynb").exists()

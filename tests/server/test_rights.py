"""A read-only user: may pull, may not write or execute, over REST and websocket."""

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
    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        return resource != "anode" or action == "read"


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

"""Every event's right, for every kind of user, over REST and the websocket alike.

Users with `read` only, `read`+`write`, `read`+`execute`, and all three push
one event of each kind in the catalogue. A push is refused with 403 exactly
when the user lacks the right the event names (a runtime's own events need
`execute`); otherwise it may still be refused for what it says (400, 409),
never for rights. The breaks this guards against: `identity()` giving every
user `execute`; an event's right lowered to `read` (interrupt, restart,
cancel, a runtime's events); REST and websocket deciding differently.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from jupyter_server.auth.authorizer import Authorizer
from tornado.httpclient import HTTPClientError

from anode_ext.log import Identity, Store
from anode_ext.log import catalogue as ev

RIGHTS: set[str] = set()


class Rights(Authorizer):
    """`anode` rights from `RIGHTS` (the server runs in this process)."""

    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        return resource != "anode" or action in RIGHTS


# Each event, the right it needs (as DESIGN.md's rules say; written here, not read
# from the catalogue, so that lowering one there fails this test) and a valid sample.
SAMPLES: dict[str, tuple[str, dict[str, Any]]] = {
    "v1.NotebookInitialized": ("write", {"title": "t"}),
    "v1.NotebookMetadataSet": ("write", {"key": "k", "value": 1}),
    "v1.CellCreated": (
        "write",
        {"cell_id": "new", "cell_type": "code", "source": "", "position": "V"},
    ),
    "v1.CellSourceChanged": ("write", {"cell_id": "c1", "source": "x"}),
    "v1.CellSourceEdited": ("write", {"cell_id": "c1", "update": "AAA=", "delta": []}),
    "v1.DocumentUpdated": ("write", {"update": "AAA="}),
    "v1.CellTypeChanged": ("write", {"cell_id": "c1", "cell_type": "markdown"}),
    "v1.CellMetadataSet": ("write", {"cell_id": "c1", "key": "k", "value": 1}),
    "v1.CellMoved": ("write", {"cell_id": "c1", "position": "W"}),
    "v1.CellDeleted": ("write", {"cell_id": "c1"}),
    "v1.CellOutputsSet": ("write", {"cell_id": "c1", "outputs": []}),
    "v1.FieldsKept": ("write", {"cell_id": None, "fields": {}}),
    "v1.RuntimeSessionStarted": ("execute", {"session_id": "s-new"}),
    "v1.RuntimeSessionEnded": ("execute", {"session_id": "s1", "reason": "gone"}),
    "v1.InterruptRequested": ("execute", {"session_id": "s1"}),
    "v1.RestartRequested": ("execute", {"session_id": "s1"}),
    "v1.ExecutionRequested": ("execute", {"execution_id": "x-new", "cell_id": None, "code": "1"}),
    "v1.ExecutionAssigned": ("execute", {"execution_id": "x1", "session_id": "s1"}),
    "v1.ExecutionStarted": ("execute", {"execution_id": "x1", "execution_count": 1}),
    "v1.OutputAppended": (
        "execute",
        {"execution_id": "x1", "output": {"output_type": "stream", "name": "stdout", "text": "a"}},
    ),
    "v1.DisplayUpdated": (
        "execute",
        {"display_id": "d", "data": {"text/plain": "a"}, "execution_id": "x1"},
    ),
    "v1.OutputsCleared": ("execute", {"execution_id": "x1", "wait": False}),
    "v1.InputRequested": ("execute", {"execution_id": "x1", "prompt": "?"}),
    "v1.InputReplied": ("execute", {"execution_id": "x1", "value": "v"}),
    "v1.ExecutionCompleted": ("execute", {"execution_id": "x1", "status": "ok"}),
    "v1.ExecutionCancelled": ("execute", {"execution_id": "x1"}),
    "v1.ExecutionFailed": ("execute", {"execution_id": "x1", "reason": "lost"}),
    "v1.CommOpened": (
        "execute",
        {"comm_id": "m-new", "session_id": "s1", "target_name": "t", "origin": "client"},
    ),
    "v1.CommMessage": ("execute", {"comm_id": "m1", "origin": "client", "data": {}}),
    "v1.CommClosed": ("execute", {"comm_id": "m1", "origin": "client"}),
    "v1.CommsDelivered": ("execute", {"session_id": "s1", "seq": 1}),
}
USERS = {
    "reader": {"read"},
    "editor": {"read", "write"},
    "runner": {"read", "execute"},
    "owner": {"read", "write", "execute"},
}


@pytest.fixture
def jp_server_config(tmp_path: Path) -> dict[str, Any]:
    stores = tmp_path / "stores"
    stores.mkdir()
    owner = Identity("owner", "o")
    with Store.open(stores / "nb.anode", create=True) as store:
        store.append([("e1", ev.NotebookInitialized(title="nb"))], owner)
    return {
        "ServerApp": {"jpserver_extensions": {"anode_ext": True}, "authorizer_class": Rights},
        "AnodeApp": {"warm_runtimes": 0, "store_dir": str(stores)},
    }


def test_every_event_has_a_sample() -> None:
    assert set(SAMPLES) == set(ev.CATALOGUE)


def needs(name: str) -> str:
    return SAMPLES[name][0]


async def rest_status(jp_fetch: Any, event: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    try:
        r = await jp_fetch(
            "anode", "api", "notebooks", "nb", "events",
            method="POST", body=json.dumps({"events": [event]}),
        )  # fmt: skip
    except HTTPClientError as err:
        assert err.response is not None
        return err.code, json.loads(err.response.body)
    return r.code, json.loads(r.body)


@pytest.mark.parametrize("user", sorted(USERS))
async def test_a_push_is_refused_for_rights_exactly_when_the_right_is_missing(
    user: str, jp_fetch: Any, jp_ws_fetch: Any
) -> None:
    RIGHTS.clear()
    RIGHTS.update(USERS[user])
    ws = await jp_ws_fetch("anode", "api", "notebooks", "nb", "sync")
    try:
        for req, (name, (_, args)) in enumerate(sorted(SAMPLES.items())):
            allowed = needs(name) in USERS[user]
            event = {"id": uuid.uuid4().hex, "name": name, "args": args}
            status, body = await rest_status(jp_fetch, event)
            await ws.write_message(json.dumps({"type": "push", "req": req, "events": [event]}))
            answer = json.loads(await ws.read_message())
            while answer.get("type") == "events":  # what the REST push appended
                answer = json.loads(await ws.read_message())
            ws_status = 200 if answer["type"] == "push_ok" else answer["status"]
            where = f"{user} pushing {name}"
            if allowed:
                assert status != 403 and ws_status != 403, (where, body, answer)
            else:
                assert status == ws_status == 403, (where, body, answer)
                assert body["index"] == answer["index"] == 0
                assert needs(name) in body["reason"] and needs(name) in answer["reason"]
    finally:
        ws.close()

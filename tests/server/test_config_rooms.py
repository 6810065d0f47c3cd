"""`max_lag` and `room_idle_timeout`, as a server configured with them behaves.

Breaks these catch: the lag bound not enforced (a reader far behind is served
for ever from the live path); idle rooms never closed (or closed while busy).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from .test_rest import create, event, push


@pytest.fixture
def anode_config() -> dict[str, object]:
    return {"max_lag": 5, "room_idle_timeout": 0.5}


async def test_a_reader_too_far_behind_is_told_to_reconnect(
    jp_fetch: Any, jp_ws_fetch: Any
) -> None:
    nb = await create(jp_fetch)
    cells = [event("CellCreated", cell_id=f"c{i}", cell_type="code", source="", position=f"V{i + 1}") for i in range(8)]  # fmt: skip
    await push(jp_fetch, nb, *cells)
    ws = await jp_ws_fetch("anode", "api", "notebooks", nb, "sync")
    await ws.write_message(json.dumps({"type": "pull", "after": 0}))
    assert await ws.read_message() is None  # closed, no page
    assert ws.close_code == 1013
    assert ws.close_reason == "too far behind; reconnect and pull from 0"
    # Within the bound, the same pull is served.
    ws = await jp_ws_fetch("anode", "api", "notebooks", nb, "sync")
    await ws.write_message(json.dumps({"type": "pull", "after": 5}))
    page = json.loads(await ws.read_message())
    assert [e["seq"] for e in page["events"]] == [6, 7, 8, 9]
    ws.close()


async def test_an_idle_room_is_closed_and_opens_again(
    jp_fetch: Any, jp_ws_fetch: Any, jp_serverapp: Any
) -> None:
    notebooks = jp_serverapp.web_app.settings["anode_notebooks"]
    nb = await create(jp_fetch)
    ws = await jp_ws_fetch("anode", "api", "notebooks", nb, "sync")
    await ws.write_message(json.dumps({"type": "pull", "after": 0}))
    await ws.read_message()
    await asyncio.sleep(1.5)  # three idle timeouts: a room with a reader stays
    assert nb in notebooks.rooms
    ws.close()
    for _ in range(100):  # then it goes (the janitor looks every timeout / 2)
        if nb not in notebooks.rooms:
            break
        await asyncio.sleep(0.1)
    assert nb not in notebooks.rooms
    state = json.loads((await jp_fetch("anode", "api", "notebooks", nb)).body)
    assert state["head"] == 1 and nb in notebooks.rooms

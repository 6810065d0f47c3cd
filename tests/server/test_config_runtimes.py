"""The warm pool (`warm_runtimes`) and `runtime_idle_timeout`, with real runtimes.

Breaks these catch: the pool never filled, or a queued cell booting a new
runtime beside a warm one; an idle runtime never stopped.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest

from .test_documents import until
from .test_rest import create, event, push


@pytest.fixture
def anode_config() -> dict[str, object]:
    return {"warm_runtimes": 1, "runtime_idle_timeout": 1.0, "runtime_lost_after": 4.0}


async def test_a_queued_cell_takes_the_warm_runtime_and_an_idle_one_stops(
    jp_fetch: Any, jp_serverapp: Any
) -> None:
    notebooks = jp_serverapp.web_app.settings["anode_notebooks"]
    pool = notebooks.runtimes.pool
    warm = await until(
        lambda: pool[0] if pool and pool[0].info else None, "a warm runtime", timeout=120
    )
    nb = await create(jp_fetch)
    x = uuid.uuid4().hex
    await push(jp_fetch, nb, event("ExecutionRequested", execution_id=x, cell_id=None, code="6*7"))

    async def state() -> dict[str, Any]:
        return dict(json.loads((await jp_fetch("anode", "api", "notebooks", nb)).body))

    for _ in range(600):
        s = await state()
        if s["executions"][0]["state"] == "completed":
            break
        await asyncio.sleep(0.1)
    (run,) = s["executions"]
    assert run["status"] == "ok"
    (rt,) = s["runtimes"]
    # It ran on the host that was warm (its boot was before the request), and
    # the pool boots the next one.
    assert rt["info"]["boot_seconds"] == round(warm.info.boot_seconds, 3)
    assert notebooks.rooms[nb].agent.host is warm
    await until(lambda: pool and pool[0] is not warm and pool[0].info, "the next warm runtime", 120)
    # Idle past runtime_idle_timeout (1 s; the room looks every lost_after / 4):
    # the session ends and the host is gone.
    for _ in range(300):
        s = await state()
        if s["runtimes"][0]["state"] == "ended":
            break
        await asyncio.sleep(0.1)
    assert s["runtimes"][0]["state"] == "ended"
    assert not warm.alive

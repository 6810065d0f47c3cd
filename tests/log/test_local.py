import asyncio

import pytest

from anode_ext.log import Store
from anode_ext.log import catalogue as ev
from anode_ext.log.local import LocalHub

from .helpers import ALICE, BOB, cell

pytestmark = pytest.mark.asyncio


async def test_a_push_wakes_every_waiting_client(tmp_path):
    with Store.open(tmp_path / "nb.anode", create=True) as store:
        hub = LocalHub(store, poll_interval=30)
        alice, bob = hub.client(ALICE), hub.client(BOB)
        waiter = asyncio.create_task(bob.wait(0, timeout=10))
        await asyncio.sleep(0.05)
        assert not waiter.done()
        created = ev.CellCreated(cell_id="c1", cell_type="code", source="", position="V")
        assert await alice.push([("e1", created)]) == [1]
        assert await asyncio.wait_for(waiter, 5) is True
        assert bob.state.t.head == alice.state.t.head >= 1


async def test_wait_times_out_when_nothing_moves(tmp_path):
    with Store.open(tmp_path / "nb.anode", create=True) as store:
        hub = LocalHub(store, poll_interval=0.05)
        assert await hub.client(ALICE).wait(0, timeout=0.2) is False


async def test_writes_of_another_process_are_noticed_by_polling(tmp_path):
    path = tmp_path / "nb.anode"
    with Store.open(path, create=True) as store, Store.open(path) as other:
        hub = LocalHub(store, poll_interval=0.05)
        waiter = asyncio.create_task(hub.client(BOB).wait(0, timeout=10))
        await asyncio.sleep(0.1)
        other.push([cell("c1")], ALICE)
        assert await asyncio.wait_for(waiter, 5) is True
        assert "c1" in store.state.t.cells

"""Every way the runtime can die ends the pending call with HostDied."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from anode_ext.runtime import HostDied, PyodideHost

from .conftest import HostMaker, run

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow]


@pytest.fixture(scope="module")
def crashing(make_host: HostMaker) -> HostMaker:
    return make_host


async def died(host: PyodideHost, code: str, timeout: float = 60) -> str:
    with pytest.raises(HostDied) as info:
        await asyncio.wait_for(host.execute(code), timeout)
    assert not host.alive
    with pytest.raises(HostDied):  # and every later call, at once
        await asyncio.wait_for(host.execute("1"), 5)
    return info.value.reason


async def test_sigkill_while_running(crashing: HostMaker) -> None:
    host = await crashing()
    task = asyncio.create_task(host.execute("while True: pass"))
    await asyncio.sleep(1.0)
    assert host.pid is not None
    os.kill(host.pid, signal.SIGKILL)
    with pytest.raises(HostDied) as info:
        await asyncio.wait_for(task, 10)
    assert "SIGKILL" in info.value.reason
    # restart brings it back
    await host.restart()
    assert (await run(host, "1 + 1")).result() == "2"
    await host.close()


async def test_os_exit_inside_python(crashing: HostMaker) -> None:
    host = await crashing()
    reason = await died(host, "import os; os._exit(3)")
    assert "exit status 3" in reason


async def test_memory_blow_up_is_stopped_by_the_watchdog(crashing: HostMaker) -> None:
    host = await crashing(memory_limit_mb=700)
    reason = await died(host, "chunks = [bytearray(64 * 1024**2) for _ in range(40)]", 120)
    assert "memory limit exceeded" in reason


async def test_sys_exit_is_just_an_error(host: PyodideHost) -> None:
    r = await run(host, "import sys; sys.exit(4)")
    assert r.reply.error is not None and r.reply.error.ename == "SystemExit"
    assert host.alive

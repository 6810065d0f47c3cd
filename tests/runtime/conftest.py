"""Real Node + Pyodide hosts for the runtime tests (no mocks).

One cold boot per session, in a cache of its own, makes the memory snapshot
that every other host here boots from; most tests share one booted host.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from anode_ext.runtime import ExecuteReply, HostInfo, PyodideHost


@dataclass
class Run:
    """What one execute gave: the reply and every on_output event, timed."""

    reply: ExecuteReply
    events: list[dict[str, Any]] = field(default_factory=list)
    times: list[float] = field(default_factory=list)

    def outputs(self, output_type: str | None = None) -> list[dict[str, Any]]:
        outs = [e["output"] for e in self.events if e["kind"] == "output"]
        return [o for o in outs if output_type is None or o["output_type"] == output_type]

    def text(self, name: str = "stdout") -> str:
        return "".join(o["text"] for o in self.outputs("stream") if o["name"] == name)

    def result(self) -> str:
        results = self.outputs("execute_result")
        assert len(results) == 1, self.events
        return str(results[0]["data"]["text/plain"])


async def run(
    host: PyodideHost,
    code: str,
    *,
    timeout: float = 60,
    on_event: Callable[[dict[str, Any]], None] | None = None,
    **kwargs: Any,
) -> Run:
    events: list[dict[str, Any]] = []
    times: list[float] = []

    def collect(ev: dict[str, Any]) -> None:
        events.append(ev)
        times.append(time.monotonic())
        if on_event is not None:
            on_event(ev)

    reply = await asyncio.wait_for(host.execute(code, on_output=collect, **kwargs), timeout)
    return Run(reply, events, times)


@dataclass
class Boot:
    cache: Path
    cold: HostInfo


@pytest_asyncio.fixture(loop_scope="session", scope="session")
async def boot(tmp_path_factory: pytest.TempPathFactory) -> Boot:
    """A cold boot into an empty cache: it writes the snapshot."""
    cache = tmp_path_factory.mktemp("anode-cache")
    host = PyodideHost(tmp_path_factory.mktemp("cold-work"), snapshot_dir=cache)
    info = await host.start()
    reply = await host.execute("40 + 2")
    assert reply.status == "ok"
    await host.close()
    return Boot(cache, info)


HostMaker = Callable[..., Awaitable[PyodideHost]]


@pytest_asyncio.fixture(loop_scope="session", scope="session")
async def make_host(
    boot: Boot, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[HostMaker]:
    """Started hosts (from the snapshot) in fresh workdirs, closed at the end."""
    hosts: list[PyodideHost] = []

    async def make(workdir: Path | None = None, **kwargs: Any) -> PyodideHost:
        kwargs.setdefault("snapshot_dir", boot.cache)
        host = PyodideHost(workdir or tmp_path_factory.mktemp("work"), **kwargs)
        hosts.append(host)
        await host.start()
        return host

    yield make
    for host in hosts:
        await host.close()


@pytest_asyncio.fixture(loop_scope="session", scope="session")
async def host(make_host: HostMaker) -> PyodideHost:
    """The host most tests share; tests leave it alive and idle."""
    h = await make_host()
    assert (await h.execute("None")).status == "ok"  # past the warm-up
    return h

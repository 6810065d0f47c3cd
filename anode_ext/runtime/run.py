"""`anode run NB.ipynb`: every code cell through the queue, like `jupyter execute`.

The notebook is imported into a log (a temporary one, or `--store`), each code
cell is requested in order and worked by an `Agent` on a Pyodide host, and the
notebook is written back from the log. No stdin: `input()` fails the cell.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import uuid
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from ..log import Identity, Store
from ..log import catalogue as ev
from ..log.local import LocalHub, LogClient
from ..log.rules import ALL_RIGHTS
from ..log.state import EXECUTING, FINAL_STATES, ExecutionRow, State
from .agent import Agent, HostFactory
from .host import PyodideHost
from .protocol import HostDied

T = TypeVar("T")
GRACE_SECONDS = 5.0  # after an interrupt, before the runtime is restarted


@dataclass
class CellResult:
    index: int  # position among the notebook's cells
    cell_id: str
    state: str
    status: str | None
    reason: str | None
    error: str | None  # "ename: evalue"
    timed_out: bool = False


@dataclass
class RunResult:
    cells: list[CellResult] = field(default_factory=list)
    sessions: list[str] = field(default_factory=list)

    @property
    def failed(self) -> CellResult | None:
        return next((c for c in self.cells if c.status != "ok"), None)


def _id() -> str:
    return uuid.uuid4().hex


async def wait_final(client: LogClient, execution_id: str, timeout: float | None) -> bool:
    """Until the execution is completed, cancelled or failed; False on timeout."""
    return await wait_state(client, execution_id, FINAL_STATES, timeout)


async def wait_state(
    client: LogClient, execution_id: str, states: Collection[str], timeout: float | None
) -> bool:
    """Until the execution is in one of `states`; False on timeout."""

    def reached(state: State) -> bool:
        row = state.t.executions.get(execution_id)  # another client's: may not be here yet
        return row is not None and row.state in states

    return await wait_for(client, reached, timeout)


async def wait_for(
    client: LogClient, reached: Callable[[State], bool], timeout: float | None
) -> bool:
    """Until `reached(client.state)` holds (checked each time the log moves); False
    on timeout."""
    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else loop.time() + timeout
    while True:
        state = client.state
        if reached(state):
            return True
        left = None if deadline is None else deadline - loop.time()
        if left is not None and left <= 0:
            return False
        await client.wait(state.t.head, None if left is None else min(left, 1.0))


async def _end_stale_sessions(admin: LogClient) -> None:
    """Sessions left live by a process that is gone (a kept store): end them."""
    for rt in list(admin.state.t.runtimes.values()):
        if rt.state == "live":
            end = ev.RuntimeSessionEnded(session_id=rt.session_id, reason="its process is gone")
            await admin.push([(_id(), end)])


async def run_store(
    store: Store,
    new_host: HostFactory,
    *,
    user: Identity,
    timeout: float | None = None,
    allow_errors: bool = False,
    on_cell: Callable[[CellResult], None] | None = None,
) -> RunResult:
    """Run every code cell of the store's notebook in order; stop at an error unless allowed."""
    hub = LocalHub(store)
    client = hub.client(user)
    await _end_stale_sessions(hub.client(Identity("anode", f"admin-{_id()}", ALL_RIGHTS)))
    agent = Agent(hub.client(Identity("runtime", f"runtime-{_id()}")), new_host)
    worker = asyncio.create_task(agent.run())
    result = RunResult()
    try:
        await _first(agent.ready(), worker)
        cells = sorted(store.state.t.cells.values(), key=lambda c: c.position)
        for index, cell in enumerate(cells):
            if cell.cell_type != "code" or not cell.source.strip():
                continue
            x = _id()
            request = ev.ExecutionRequested(
                execution_id=x, cell_id=cell.id, code=cell.source, allow_stdin=False
            )
            await client.push([(_id(), request)])
            # The timeout counts from the start, as the cell waits for a boot.
            await _first(wait_state(client, x, {EXECUTING, *FINAL_STATES}, None), worker)
            timed_out = not await _first(wait_final(client, x, timeout), worker)
            if timed_out:
                await _stop_overrunning(client, agent, worker, x)
            row = client.state.t.executions[x]
            res = _result(index, row, timed_out, timeout)
            result.cells.append(res)
            if on_cell is not None:
                on_cell(res)
            if res.status != "ok" and not allow_errors:
                break
    finally:
        await agent.stop()  # the agent ends its session on its way out
        with contextlib.suppress(asyncio.CancelledError, asyncio.TimeoutError, HostDied):
            await asyncio.wait_for(worker, 10)
        result.sessions = agent.sessions
    return result


async def _first(work: Awaitable[T], worker: asyncio.Task[None]) -> T:
    """Await `work` unless the agent's task ends first (it raised: re-raise)."""
    task = asyncio.ensure_future(work)
    await asyncio.wait({task, worker}, return_when=asyncio.FIRST_COMPLETED)
    if not task.done():
        task.cancel()
        worker.result()  # raises what ended the agent
        raise RuntimeError("the runtime agent stopped")
    return task.result()


async def _stop_overrunning(
    client: LogClient, agent: Agent, worker: asyncio.Task[None], x: str
) -> None:
    """Interrupt; if the cell ignores it, restart the runtime (which fails the cell)."""
    sid = client.state.t.executions[x].session_id or agent.session_id
    assert sid is not None
    await client.push([(_id(), ev.InterruptRequested(session_id=sid))])
    if await _first(wait_final(client, x, GRACE_SECONDS), worker):
        return
    await client.push([(_id(), ev.RestartRequested(session_id=sid))])
    await _first(wait_final(client, x, None), worker)


def _result(index: int, row: ExecutionRow, timed_out: bool, timeout: float | None) -> CellResult:
    error = None
    if row.reply.get("status") == "error":
        error = f"{row.reply.get('ename', '')}: {row.reply.get('evalue', '')}"
    status = row.status if row.state == "completed" else row.state
    reason = row.reason
    if timed_out:
        status = "error" if status == "ok" else status
        reason = f"timed out after {timeout:g} s" + (f" ({reason})" if reason else "")
    return CellResult(index, row.cell_id or "", row.state, status, reason, error, timed_out)


def host_factory(workdir: Path, **options: object) -> HostFactory:
    def make() -> PyodideHost:
        return PyodideHost(workdir, **options)  # type: ignore[arg-type]

    return make


def temporary_store() -> tuple[Store, Path]:
    folder = Path(tempfile.mkdtemp(prefix="anode-run-"))
    path = folder / "run.anode"
    return Store.open(path, create=True), folder

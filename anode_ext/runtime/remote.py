"""`anode runtime --server URL --notebook ID`: a runtime on any machine that reaches the server.

The same `Agent` as everywhere else, over the remote `LogClient`. Its liveness
is the connection: the server ends the session if the connection stays lost
(see `server.rooms`), and the agent's own reconnects resume where it left off.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from pathlib import Path

from ..log.remote import RemoteLog
from .agent import Agent
from .host import PyodideHost

log = logging.getLogger(__name__)


async def serve(
    url: str,
    notebook_id: str,
    *,
    token: str | None,
    workdir: Path,
    network: bool = False,
    node: str | None = None,
    stop: asyncio.Event | None = None,
) -> list[str]:
    """Work the notebook's queue until `stop` is set (or SIGINT/SIGTERM); the sessions run."""
    # The agent reads the events themselves (front ends' comm messages for Python).
    client = await RemoteLog(url, notebook_id, token=token, keep_events=True).start()
    agent = Agent(client, lambda: PyodideHost(workdir, node=node, network=network))
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    worker = asyncio.ensure_future(agent.run())
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({worker, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if worker.done():
            worker.result()  # raises what ended it
    finally:
        stopping.cancel()
        await agent.stop()
        with contextlib.suppress(asyncio.CancelledError, asyncio.TimeoutError):
            await asyncio.wait_for(worker, 15)
        await client.close()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
    return agent.sessions

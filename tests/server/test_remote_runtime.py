"""`anode runtime` on a real server: it works the queue, two watchers converge, and
when it is killed its cell fails with the reason and the server's runtime takes over."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from anode_ext.log import catalogue as ev
from anode_ext.log.remote import RemoteLog
from anode_ext.log.view import state_json
from anode_ext.runtime.run import wait_final, wait_state

from .real import TOKEN, Server


def _id() -> str:
    return uuid.uuid4().hex


def request(x: str, code: str) -> tuple[str, ev.Event]:
    return _id(), ev.ExecutionRequested(execution_id=x, cell_id="c", code=code)


def until(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while not (got := check()):
        assert time.monotonic() < deadline, what
        time.sleep(0.3)
    return got


def test_a_remote_runtime_works_the_queue_and_is_replaced_when_killed(tmp_path: Path) -> None:
    server = Server(
        tmp_path, "--AnodeApp.warm_runtimes=0", "--AnodeApp.runtime_lost_after=3"
    ).start()
    runtime: subprocess.Popen[str] | None = None
    try:
        nb = server.create()
        work = tmp_path / "remote-work"
        work.mkdir()
        runtime = subprocess.Popen(
            [sys.executable, "-m", "anode_ext", "runtime", "--server", server.url,
             "--notebook", nb, "--token", TOKEN, "--workdir", str(work)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        live = until(
            lambda: [r for r in server.state(nb)["runtimes"] if r["state"] == "live"],
            240,
            "the remote runtime never registered",
        )
        remote_sid = live[0]["session_id"]

        async def main() -> tuple[RemoteLog, RemoteLog, dict[str, str]]:
            alice = await RemoteLog(server.url, nb, token=TOKEN).start()
            bob = await RemoteLog(server.url, nb, token=TOKEN).start()
            first, busy, queued = _id(), _id(), _id()
            cell = ev.CellCreated(cell_id="c", cell_type="code", source="", position="V")
            await alice.push([(_id(), cell)])
            code = "import os\nprint('hi from', os.getcwd())\n6 * 7"
            await alice.push([request(first, code)])
            assert await wait_final(bob, first, 120)
            await bob.push([request(busy, "while True: pass"), request(queued, "1 + 1")])
            assert await wait_state(alice, busy, {"executing"}, 60)
            assert runtime is not None
            runtime.send_signal(signal.SIGKILL)  # no goodbye: only its silence tells
            assert await wait_final(alice, busy, 60)
            assert await wait_final(alice, queued, 240)
            head = alice.state.t.head
            assert await bob.wait(head - 1, 30)
            return alice, bob, {"first": first, "busy": busy, "queued": queued}

        alice, bob, x = asyncio.run(main())
        t = alice.state.t
        first = t.executions[x["first"]]
        assert first.status == "ok" and first.session_id == remote_sid
        texts = [o.get("text", "") for o in t.outputs[x["first"]].outputs]
        assert "".join(texts).startswith("hi from")
        busy = t.executions[x["busy"]]
        assert busy.state == "failed" and "runtime lost" in (busy.reason or "")
        queued = t.executions[x["queued"]]
        assert queued.status == "ok" and queued.session_id not in (None, remote_sid)
        assert t.runtimes[remote_sid].state == "ended"
        assert state_json(alice.state, nb) == state_json(bob.state, nb) == server.state(nb)
    finally:
        if runtime is not None and runtime.poll() is None:
            runtime.kill()
        server.stop()

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


def start_runtime(
    server: Server, nb: str, workdir: Path, *args: str, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[str], str]:
    """`anode runtime` for the notebook, once its session is live: the process, the session."""
    runtime = subprocess.Popen(
        [sys.executable, "-m", "anode_ext", "runtime", "--server", server.url,
         "--notebook", nb, "--workdir", str(workdir), *args],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        live = until(
            lambda: [r for r in server.state(nb)["runtimes"] if r["state"] == "live"],
            240,
            "the remote runtime never registered",
        )
    except BaseException:
        runtime.kill()
        raise
    return runtime, str(live[0]["session_id"])


def test_a_remote_runtime_works_the_queue_and_is_replaced_when_killed(tmp_path: Path) -> None:
    server = Server(
        tmp_path, "--AnodeApp.warm_runtimes=0", "--AnodeApp.runtime_lost_after=3"
    ).start()
    runtime: subprocess.Popen[str] | None = None
    try:
        nb = server.create()
        work = tmp_path / "remote-work"
        work.mkdir()
        runtime, remote_sid = start_runtime(server, nb, work, "--token", TOKEN)

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


def test_anode_runtime_takes_its_token_from_the_environment_and_network_when_asked(
    tmp_path: Path,
) -> None:
    """`anode runtime` without --token reads $ANODE_TOKEN, else $JUPYTER_TOKEN;
    with --network its code reaches the server's machine, without it not.
    Breaks this catches: the variables not read (the runtime never connects),
    --network ignored."""
    import os

    server = Server(tmp_path, "--AnodeApp.warm_runtimes=0").start()
    fetch = f"from pyodide.http import pyfetch\n(await pyfetch('{server.url}/api/status')).status"
    try:
        for variable, network in (("JUPYTER_TOKEN", ["--network"]), ("ANODE_TOKEN", [])):
            nb = server.create()
            env = {k: v for k, v in os.environ.items() if k not in ("ANODE_TOKEN", "JUPYTER_TOKEN")}
            env[variable] = TOKEN
            runtime, _ = start_runtime(server, nb, tmp_path, *network, env=env)
            try:
                x = _id()
                event = {"id": _id(), "name": "v1.ExecutionRequested"}
                event["args"] = {"execution_id": x, "cell_id": None, "code": fetch}  # type: ignore[assignment]
                assert (
                    server.call(f"/anode/api/notebooks/{nb}/events", {"events": [event]})[0] == 200
                )

                def done(nb: str = nb, x: str = x) -> dict[str, Any] | None:
                    rows = [e for e in server.state(nb)["executions"] if e["id"] == x]
                    return rows[0] if rows and rows[0]["state"] in ("completed", "failed") else None

                row = until(done, 120, "the fetch never ended")
                assert row["status"] == ("ok" if network else "error"), (variable, row)
            finally:
                runtime.kill()
                runtime.wait(30)
    finally:
        server.stop()


def test_a_stopped_runtime_is_lost_though_its_socket_stays_open(tmp_path: Path) -> None:
    """A runtime whose process is stopped (SIGSTOP: a hung machine, a half-open
    connection) keeps its TCP connection but answers no ping: the server closes
    the socket at the ping timeout, ends the session after `runtime_lost_after`,
    fails its cell and runs the queue on a runtime of its own. Break this
    catches: liveness taken from the socket being open."""
    config = tmp_path / "pings.py"
    config.write_text(
        "c.ServerApp.tornado_settings = {'ws_ping_interval': 500, 'ws_ping_timeout': 1500}\n"
    )
    server = Server(
        tmp_path,
        "--AnodeApp.warm_runtimes=0",
        "--AnodeApp.runtime_lost_after=2",
        f"--config={config}",
    ).start()
    runtime: subprocess.Popen[str] | None = None
    try:
        nb = server.create()
        runtime, sid = start_runtime(server, nb, tmp_path, "--token", TOKEN)
        busy, after = _id(), _id()
        events = [
            {"id": _id(), "name": "v1.ExecutionRequested",
             "args": {"execution_id": busy, "cell_id": None, "code": "while True: pass"}},
            {"id": _id(), "name": "v1.ExecutionRequested",
             "args": {"execution_id": after, "cell_id": None, "code": "6 * 7"}},
        ]  # fmt: skip
        assert server.call(f"/anode/api/notebooks/{nb}/events", {"events": events})[0] == 200

        def state_of(x: str) -> dict[str, Any]:
            return next(e for e in server.state(nb)["executions"] if e["id"] == x)

        until(lambda: state_of(busy)["state"] == "executing", 120, "the loop never started")
        runtime.send_signal(signal.SIGSTOP)
        lost = until(
            lambda: state_of(busy) if state_of(busy)["state"] == "failed" else None,
            60,
            "a stopped runtime was never declared lost",
        )
        assert "runtime lost" in (lost["reason"] or "")
        rt = next(r for r in server.state(nb)["runtimes"] if r["session_id"] == sid)
        assert rt["state"] == "ended"
        done = until(
            lambda: state_of(after) if state_of(after)["state"] == "completed" else None,
            240,
            "the queue did not go on",
        )
        assert done["status"] == "ok" and done["session_id"] != sid
    finally:
        if runtime is not None:
            runtime.send_signal(signal.SIGCONT)
            runtime.kill()
            runtime.wait(30)
        server.stop()


def test_a_remote_runtime_hands_python_the_front_ends_comm_messages(tmp_path: Path) -> None:
    """Widgets on `anode runtime`: its Python's comms reach the log, and a front
    end's update pushed over REST reaches its Python (over the sync websocket)."""
    server = Server(tmp_path, "--AnodeApp.warm_runtimes=0").start()
    runtime: subprocess.Popen[str] | None = None
    try:
        nb = server.create()
        work = tmp_path / "remote-work"
        work.mkdir()
        runtime, sid = start_runtime(server, nb, work, "--token", TOKEN)

        def run(code: str) -> dict[str, Any]:
            x = _id()
            args = {"execution_id": x, "cell_id": None, "code": code}
            status, _ = server.call(
                f"/anode/api/notebooks/{nb}/events",
                {"events": [{"id": _id(), "name": "v1.ExecutionRequested", "args": args}]},
            )
            assert status == 200
            return until(
                lambda: next(
                    (
                        e
                        for e in server.state(nb)["executions"]
                        if e["id"] == x and e["state"] == "completed"
                    ),
                    None,
                ),
                120,
                f"{code!r} did not complete",
            )

        run("import ipywidgets as w\ns = w.IntSlider(value=1)")
        events = server.call(f"/anode/api/notebooks/{nb}/events?after=0")[1]["events"]
        opened = [
            e["args"]
            for e in events
            if e["name"] == "v1.CommOpened"
            and e["args"]["data"]["state"].get("_model_name") == "IntSliderModel"
        ]
        assert opened and opened[0]["session_id"] == sid
        update = {
            "comm_id": opened[0]["comm_id"],
            "origin": "client",
            "data": {"method": "update", "state": {"value": 6}, "buffer_paths": []},
        }
        status, body = server.call(
            f"/anode/api/notebooks/{nb}/events",
            {"events": [{"id": _id(), "name": "v1.CommMessage", "args": update}]},
        )
        assert status == 200
        (seq,) = body["seqs"]

        def delivered() -> bool:
            events = server.call(f"/anode/api/notebooks/{nb}/events?after={seq}")[1]["events"]
            return any(e["name"] == "v1.CommsDelivered" and e["args"]["seq"] >= seq for e in events)

        until(delivered, 60, "the remote runtime never delivered the comm message")
        run("print(s.value)")
        events = server.call(f"/anode/api/notebooks/{nb}/events?after={seq}")[1]["events"]
        printed = "".join(
            e["args"]["output"].get("text", "") for e in events if e["name"] == "v1.OutputAppended"
        )
        assert printed == "6\n"
    finally:
        if runtime is not None:
            runtime.send_signal(signal.SIGINT)
            try:
                runtime.wait(30)
            except subprocess.TimeoutExpired:
                runtime.kill()
        server.stop()

"""The kernel pool (kernel/pool.py): real standby kernels, a real service.

A kernel that jupyter_client starts with ANODE_POOL=1 is a standby process
that had its imports done: it must behave as a launched kernel does (its
directory, its environment, interrupts, shutdown, kill) and die with the
client that took it.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jupyter_client.manager import KernelManager

from anode_ext.kernel import pool
from anode_ext.kernel.pool_service import KernelService
from anode_ext.runtime import pool as runtime_pool
from anode_ext.runtime.launch import BootOptions

from ..procs import LogSince, alive, children, running, wait_until

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="Linux only (pidfd, SCM_RIGHTS)")

CMD = [sys.executable, "-m", "anode_ext.kernel", "-f", "/tmp/k.json"]


def test_only_our_kernels_usual_launch_is_pooled(tmp_path: Path) -> None:
    assert pool.kernel_args(CMD, {"env": {}}) == ["-f", "/tmp/k.json"]
    other = [sys.executable, "-m", "ipykernel_launcher", "-f", "/tmp/k.json"]
    assert pool.kernel_args(other, {}) is None
    assert pool.kernel_args([sys.executable, "-m", "anode_ext.kernel", "install"], {}) is None
    assert pool.kernel_args(CMD, {"stdout": subprocess.PIPE}) is None  # pipes of its own
    assert pool.kernel_args(CMD, {"independent": True}) is None
    # One service per Python and PYTHON* variables; a notebook's credential
    # never reaches the long-lived service.
    env = {"XDG_CACHE_HOME": "/c", "ANODE_KERNEL_CREDENTIAL": "secret", "JPY_SESSION_NAME": "x"}
    assert pool.socket_path(sys.executable, env) != pool.socket_path(
        sys.executable, {**env, "PYTHONPATH": "/elsewhere"}
    )
    assert pool.socket_path(sys.executable, env).parent == Path("/c/anode/pool")
    # Another virtualenv's python links to the same interpreter, with other packages.
    (tmp_path / "python").symlink_to(os.path.realpath(sys.executable))
    assert pool.socket_path(str(tmp_path / "python"), env) != pool.socket_path(
        os.path.realpath(sys.executable), env
    )
    assert pool.service_env(env) == {"XDG_CACHE_HOME": "/c"}


def start(kernels: list[KernelManager], cwd: Path) -> KernelManager:
    env = {**os.environ, "ANODE_POOL": "1", "ANODE_POOL_IDLE": "60"}
    env["ANODE_KERNEL_STORE"] = str(cwd / "store.anode")
    km = KernelManager(kernel_name="anode-pyodide")
    km.start_kernel(env=env, cwd=str(cwd))
    kernels.append(km)
    return km


def run(km: KernelManager, code: str, timeout: float = 120) -> tuple[dict[str, Any], str]:
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=timeout)
        out: list[str] = []
        reply = kc.execute_interactive(
            code,
            timeout=timeout,
            output_hook=lambda m: out.append(m["content"].get("text", "")),
        )
        return reply["content"], "".join(out)
    finally:
        kc.stop_channels()


def test_a_standby_kernel_runs_as_a_launched_one_would(
    kernels: list[KernelManager], tmp_path: Path
) -> None:
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "m.txt").write_text(f"from {name}")
    env = {**os.environ, "ANODE_POOL": "1"}
    log = LogSince(pool.socket_path(sys.executable, env).with_suffix(".log"))
    first = start(kernels, tmp_path / "a")
    assert isinstance(first.provisioner.process, subprocess.Popen)  # type: ignore[union-attr]
    # No service was there: the first kernel started one, which boots a standby.
    service = wait_until(lambda: running(pool.SERVICE_MODULE))[0]
    standby = wait_until(lambda: children(service))[0]
    wait_until(lambda: f"kernel {standby} ready" in log.text())

    km = start(kernels, tmp_path / "b")
    process = km.provisioner.process  # type: ignore[union-attr]
    assert isinstance(process, pool.PooledKernel) and process.pid == standby
    reply, text = run(km, "print(open('m.txt').read())")
    assert reply["status"] == "ok" and text == "from b\n"  # its directory, for its runtime
    assert Path(f"/proc/{standby}/cwd").resolve() == (tmp_path / "b").resolve()
    # The taker's environment (the kernel keeps its log where it says).
    assert (tmp_path / "b" / "store.anode").is_file()
    assert f"kernel {standby} handed over in {(tmp_path / 'b').resolve()}" in log.text()

    # Interrupts reach it (SIGINT to its process group, as for a launched kernel).
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
        msg_id = kc.execute("import time\nfor _ in range(600): time.sleep(0.05)")
        time.sleep(1.5)
        km.interrupt_kernel()
        reply = kc.get_shell_msg(timeout=60)
        assert reply["parent_header"]["msg_id"] == msg_id
        assert reply["content"]["status"] == "error"
        assert reply["content"]["ename"] == "KeyboardInterrupt"
    finally:
        kc.stop_channels()

    km.shutdown_kernel(now=False)  # a shutdown request, then its exit status
    assert process.returncode == 0 and not alive(standby)

    # Killed (`now=True`): SIGKILL reaches a standby kernel too, and its
    # runtime (its own child, or the runtime pool's) goes with it.
    wait_until(lambda: len(children(service)) == 1)  # the next standby
    (tmp_path / "c").mkdir()
    third = start(kernels, tmp_path / "c")
    pid = third.provisioner.process.pid  # type: ignore[union-attr]
    assert isinstance(third.provisioner.process, pool.PooledKernel)  # type: ignore[union-attr]
    assert run(third, "1")[0]["status"] == "ok"
    runtime = children(pid) or runtime_from_pool(tmp_path / "c")
    assert len(runtime) == 1 and alive(runtime[0])
    third.shutdown_kernel(now=True)
    wait_until(lambda: not alive(pid) and not alive(runtime[0]), 30)
    first.shutdown_kernel(now=False)


def runtime_from_pool(workdir: Path) -> list[int]:
    """The runtime the runtime pool handed over for ``workdir``, by its log."""
    log = runtime_pool.socket_path(BootOptions.resolved(workdir)).parent / "service.log"
    end = f" handed over for {workdir.resolve()}"
    lines = log.read_text().splitlines()
    return [int(line.split(" runtime ")[1].split()[0]) for line in lines if line.endswith(end)]


def test_a_taken_kernel_dies_with_the_client_that_took_it(
    kernels: list[KernelManager], tmp_path: Path
) -> None:
    client = textwrap.dedent(
        """
        import os, sys, time
        from jupyter_client.manager import KernelManager
        os.environ.update(ANODE_POOL="1", ANODE_POOL_IDLE="60")
        for _ in range(2):  # the first starts the service; the second is a standby
            km = KernelManager(kernel_name="anode-pyodide")
            km.start_kernel(cwd=sys.argv[1])
            print(type(km.provisioner.process).__name__, km.provisioner.process.pid, flush=True)
            time.sleep(8)
        time.sleep(600)
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", client, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        kinds = [proc.stdout.readline().split() for _ in range(2)]
        assert [k[0] for k in kinds] == ["Popen", "PooledKernel"], kinds
        taken = int(kinds[1][1])
        assert alive(taken)
    finally:
        proc.kill()  # no shutdown, no goodbye
        proc.wait()
    wait_until(lambda: not alive(taken), 30)


@pytest.fixture
def service(tmp_path: Path) -> Iterator[KernelService]:
    svc = KernelService(tmp_path / "k.sock", idle_s=600)
    thread = threading.Thread(target=svc.run, daemon=True)
    thread.start()
    yield svc
    svc.stop()
    thread.join(60)


def test_a_bad_request_is_refused_and_the_standby_stays_offered(
    service: KernelService, tmp_path: Path
) -> None:
    pid = wait_until(service.ready_pids, 120)[0]
    r, w = os.pipe()

    def ask(request: Any, fds: list[int]) -> dict[str, Any]:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(10)
            conn.connect(str(service.path))
            line = request if isinstance(request, bytes) else json.dumps(request).encode()
            socket.send_fds(conn, [line + b"\n"], fds)
            return dict(json.loads(conn.recv(1 << 16)))

    good = {"argv": ["-f", str(tmp_path / "k.json")], "cwd": str(tmp_path), "env": {}}
    std = [sys.stdout.fileno(), sys.stderr.fileno()]
    try:
        for request, fds in (
            (b"not json", [*std, r]),
            ({**good, "argv": "-f x"}, [*std, r]),
            ({**good, "env": {"A": 1}}, [*std, r]),
            ({**good, "cwd": str(tmp_path / "missing")}, [*std, r]),
            ({k: v for k, v in good.items() if k != "cwd"}, [*std, r]),
            (good, std),  # no pipe: nothing would end it with its taker
        ):
            reply = ask(request, fds)
            assert reply["ok"] is False and reply["reason"], request
    finally:
        os.close(r)
        os.close(w)
    assert service.ready_pids() == [pid] and alive(pid)  # nothing handed over, nothing lost

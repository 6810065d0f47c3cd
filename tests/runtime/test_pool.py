"""The warm pool (runtime/pool.py): a real service in a thread, real runtimes."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from anode_ext.runtime import HostDied, PyodideHost, pool
from anode_ext.runtime.launch import BootOptions, pool_setting
from anode_ext.runtime.pool_service import Service

from ..procs import alive
from .conftest import Boot, run

pytestmark = [
    pytest.mark.asyncio(loop_scope="session"),
    pytest.mark.skipif(pool.tools() is None, reason="no user/mount namespaces, nsenter or mount"),
]


def serve(boot: Boot, **kwargs: float) -> tuple[Service, threading.Thread]:
    """A service for the session cache's options (its own key: no user's pool)."""
    service = Service(BootOptions.resolved(Path("/"), None, boot.cache), **kwargs)  # type: ignore[arg-type]
    thread = threading.Thread(target=service.run, daemon=True)
    thread.start()
    return service, thread


async def offered(service: Service, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    while not service.ready_pids():
        assert time.monotonic() < deadline, "the pool booted no runtime"
        await asyncio.sleep(0.05)
    return service.ready_pids()[0]


@pytest.fixture
def service(boot: Boot, monkeypatch: pytest.MonkeyPatch) -> Iterator[Service]:
    monkeypatch.setenv("ANODE_POOL", "1")
    svc, thread = serve(boot)
    yield svc
    svc.stop()
    thread.join(30)
    assert not thread.is_alive()


def notebook_dir(tmp_path: Path, name: str) -> Path:
    d = tmp_path / name
    d.mkdir()
    (d / "m.txt").write_text(f"from {name}")
    return d


async def test_a_host_takes_a_warmed_runtime_for_its_own_directory(
    service: Service, boot: Boot, tmp_path: Path
) -> None:
    a, b = notebook_dir(tmp_path, "a"), notebook_dir(tmp_path, "b")
    waiting = await offered(service)
    host = PyodideHost(a, snapshot_dir=boot.cache, warm_pool=True)
    try:
        info = await host.start()
        assert info.snapshot == "loaded (warm pool)" and info.pid == waiting
        assert info.from_snapshot and info.network_isolated
        # The notebook's directory, and only it, is the sandbox's work folder.
        r = await run(host, "import os\nprint(open('m.txt').read(), sorted(os.listdir('.')))")
        assert r.text() == "from a ['m.txt']\n"
        await run(host, "open('made.txt', 'w').write('x')\nx = 41")
        assert (a / "made.txt").read_text() == "x"
        # The mount is the runtime's own: outside, its directory stays empty.
        assert host._mount is not None
        mount = host._mount.path
        assert sorted(os.listdir(mount)) == [".owner"]
        cmdline = Path(f"/proc/{info.pid}/cmdline").read_bytes().split(b"\0")
        assert b"--permission" in cmdline and f"--allow-fs-write={mount}".encode() in cmdline

        # The next kernel gets another, fresh runtime, for its own directory.
        second = await offered(service)
        assert second != info.pid
        other = PyodideHost(b, snapshot_dir=boot.cache, warm_pool=True)
        try:
            info2 = await other.start()
            assert info2.pid == second
            r = await run(other, "print(open('m.txt').read())\nx")
            assert r.text() == "from b\n"
            assert r.reply.status == "error" and r.reply.error is not None
            assert r.reply.error.ename == "NameError"
        finally:
            await other.close()
    finally:
        await host.close()
    assert not mount.exists()
    assert not Path(f"/proc/{info.pid}").exists()


async def test_a_killed_pooled_runtime_says_how_and_restarts_from_the_pool(
    service: Service, boot: Boot, tmp_path: Path
) -> None:
    await offered(service)
    host = PyodideHost(tmp_path, snapshot_dir=boot.cache, warm_pool=True)
    try:
        info = await host.start()
        assert info.snapshot == "loaded (warm pool)"
        os.kill(info.pid, signal.SIGKILL)
        with pytest.raises(HostDied, match="SIGKILL"):  # the pool relays the status
            await asyncio.wait_for(host.execute("1"), 30)
        await offered(service)
        info = await host.restart()
        assert info.snapshot == "loaded (warm pool)"
        assert (await run(host, "6 * 7")).result() == "42"
    finally:
        await host.close()


async def test_nothing_ready_means_a_boot_of_ones_own(
    boot: Boot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANODE_POOL", "1")
    svc, thread = serve(boot, size=0)  # never has one ready
    try:
        deadline = time.monotonic() + 30
        while not svc.path.exists():
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        host = PyodideHost(tmp_path, snapshot_dir=boot.cache, warm_pool=True)
        try:
            info = await host.start()
            assert info.snapshot == "loaded"  # booted by itself
            assert (await run(host, "1 + 1")).result() == "2"
        finally:
            await host.close()
    finally:
        svc.stop()
        thread.join(30)
    options = BootOptions.resolved(tmp_path, None, boot.cache)
    assert pool.eligible(options)
    # A sandbox with network access has no namespaces to mount in: never pooled.
    networked = dataclasses.replace(options, network=True)
    assert not pool.eligible(networked) and pool.take(networked) is None
    for value, setting in (("0", False), ("off", False), ("1", True), ("", None)):
        monkeypatch.setenv("ANODE_POOL", value)
        assert pool_setting() is setting


async def test_the_service_ends_after_its_idle_while_and_takes_its_runtime_along(
    boot: Boot, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANODE_POOL", "1")
    svc, thread = serve(boot, idle_s=3)
    pid = await offered(svc)
    await asyncio.to_thread(thread.join, 30)
    assert not thread.is_alive()
    assert not svc.path.exists()
    deadline = time.monotonic() + 10
    while alive(pid):
        assert time.monotonic() < deadline, "the spare runtime outlived its service"
        await asyncio.sleep(0.05)


async def test_a_bad_request_is_refused_and_the_runtime_stays_offered(
    service: Service, tmp_path: Path
) -> None:
    pid = await offered(service)

    def ask(line: bytes) -> dict[str, object]:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(10)
            conn.connect(str(service.path))
            conn.sendall(line)
            data, fds, _flags, _addr = socket.recv_fds(conn, 1 << 16, 5)
            assert fds == []
            return dict(json.loads(data))

    for line in (
        b"not json\n",
        b'{"no workdir": 1}\n',
        json.dumps({"workdir": str(tmp_path / "missing")}).encode() + b"\n",
        json.dumps({"workdir": str(tmp_path / "file.txt")}).encode() + b"\n",
    ):
        (tmp_path / "file.txt").write_text("x")
        reply = await asyncio.to_thread(ask, line)
        assert reply["ok"] is False and reply["reason"], line
    assert service.ready_pids() == [pid]  # nothing handed over, nothing lost

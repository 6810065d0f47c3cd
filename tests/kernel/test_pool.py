"""Kernels (real processes) and the warm pool's service (a real daemon)."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from jupyter_client.manager import KernelManager

from anode_ext.kernel.pool import SERVICE_MODULE as KERNEL_SERVICE
from anode_ext.runtime import pool
from anode_ext.runtime.launch import BootOptions

pytestmark = pytest.mark.skipif(
    pool.tools() is None, reason="no user/mount namespaces, nsenter or mount"
)


def children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        out += [int(k) for k in (task / "children").read_text().split()]
    return out


def services(module: str = pool.SERVICE_MODULE) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmd = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if module.encode() in cmd:
                found.append(int(proc.name))
    return found


def wait_until(check, timeout: float = 60):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
    return value


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


def stop_services() -> None:
    """No pool service left running: the runtime pool's and the kernel
    pool's (a kernel with ANODE_POOL=1 starts both), ours or a test's before."""
    running = services() + services(KERNEL_SERVICE)
    for pid in running:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    wait_until(lambda: not any(alive(pid) for pid in running), 30)


@pytest.fixture
def kernels() -> Iterator[list[KernelManager]]:
    stop_services()
    started: list[KernelManager] = []
    yield started
    for km in started:
        km.shutdown_kernel(now=True)
    stop_services()


def start(kernels: list[KernelManager], cwd: Path) -> tuple[KernelManager, str]:
    env = {**os.environ, "ANODE_POOL": "1", "ANODE_POOL_IDLE": "60"}
    km = KernelManager(kernel_name="anode-pyodide")
    km.start_kernel(env=env, cwd=str(cwd))
    kernels.append(km)
    kc = km.client()
    kc.start_channels()
    kc.wait_for_ready(timeout=120)
    out: list[str] = []
    reply = kc.execute_interactive(
        "print(open('m.txt').read())",
        timeout=120,
        output_hook=lambda m: out.append(m["content"].get("text", "")),
    )
    kc.stop_channels()
    assert reply["content"]["status"] == "ok"
    return km, "".join(out)


def test_a_kernel_starts_the_service_and_the_next_takes_its_warmed_runtime(
    kernels: list[KernelManager], tmp_path: Path
) -> None:
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "m.txt").write_text(f"from {name}")
    _, text = start(kernels, tmp_path / "a")
    assert text == "from a\n"
    # No service was there: the first kernel started one (and booted its own).
    service = wait_until(services)[0]
    assert pool.socket_path(BootOptions.resolved(tmp_path)).exists()
    spare = wait_until(lambda: children(service))[0]
    log = pool.socket_path(BootOptions.resolved(tmp_path)).parent / "service.log"
    wait_until(lambda: f"runtime {spare} ready" in log.read_text())  # booted and warmed

    km2, text = start(kernels, tmp_path / "b")
    assert text == "from b\n"  # its own directory, mounted in the pooled runtime
    kernel2 = km2.provisioner.process.pid  # type: ignore[union-attr]
    assert children(kernel2) == []  # its runtime is the service's child:
    assert f"runtime {spare} handed over for {tmp_path / 'b'}" in log.read_text()
    km2.shutdown_kernel(now=False)
    wait_until(lambda: spare not in children(service), 30)  # ended with its kernel
    os.kill(service, signal.SIGTERM)
    wait_until(lambda: not Path(f"/proc/{service}").exists() or service not in services(), 30)

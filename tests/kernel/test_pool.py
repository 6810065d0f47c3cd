"""Kernels (real processes) and the warm pool's service (a real daemon)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from jupyter_client.manager import KernelManager

from anode_ext.runtime import pool
from anode_ext.runtime.launch import BootOptions

from ..procs import LogSince, children, running, wait_until

pytestmark = pytest.mark.skipif(
    pool.tools() is None, reason="no user/mount namespaces, nsenter or mount"
)


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
    log = LogSince(pool.socket_path(BootOptions.resolved(tmp_path)).parent / "service.log")
    _, text = start(kernels, tmp_path / "a")
    assert text == "from a\n"
    # No service was there: the first kernel started one (and booted its own).
    service = wait_until(lambda: running(pool.SERVICE_MODULE))[0]
    assert pool.socket_path(BootOptions.resolved(tmp_path)).exists()
    spare = wait_until(lambda: children(service))[0]
    wait_until(lambda: f"runtime {spare} ready" in log.text())  # booted and warmed

    km2, text = start(kernels, tmp_path / "b")
    assert text == "from b\n"  # its own directory, mounted in the pooled runtime
    kernel2 = km2.provisioner.process.pid  # type: ignore[union-attr]
    assert children(kernel2) == []  # its runtime is the service's child:
    assert f"runtime {spare} handed over for {tmp_path / 'b'}" in log.text()
    km2.shutdown_kernel(now=False)
    wait_until(lambda: spare not in children(service), 30)  # ended with its kernel
    os.kill(service, signal.SIGTERM)
    wait_until(
        lambda: (
            not Path(f"/proc/{service}").exists() or service not in running(pool.SERVICE_MODULE)
        ),
        30,
    )

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Iterator

import pytest
from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
from jupyter_client.manager import KernelManager

from ..procs import alive, running, wait_until


@pytest.fixture(scope="session", autouse=True)
def anode_kernelspec() -> None:
    """A wheel install ships the spec; an editable one may not: install it into this prefix."""
    try:
        KernelSpecManager().get_kernel_spec("anode-pyodide")
    except NoSuchKernel:
        from anode_ext.kernel.install import install

        install(prefix=sys.prefix)


def stop_pool_services() -> None:
    """No pool service left running: the runtime pool's and the kernel
    pool's (a kernel with ANODE_POOL=1 starts both), ours or a test's before."""
    from anode_ext.kernel.pool import SERVICE_MODULE as KERNEL_SERVICE
    from anode_ext.runtime.pool import SERVICE_MODULE as RUNTIME_SERVICE

    found = running(RUNTIME_SERVICE) + running(KERNEL_SERVICE)
    for pid in found:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    wait_until(lambda: not any(alive(pid) for pid in found), 30)


@pytest.fixture
def kernels() -> Iterator[list[KernelManager]]:
    """Kernels a pool test starts (shut down after it), with no pool service
    before or after: each test starts the services itself."""
    stop_pool_services()
    started: list[KernelManager] = []
    yield started
    for km in started:
        if km.has_kernel:
            km.shutdown_kernel(now=True)
    stop_pool_services()

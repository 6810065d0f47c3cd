from __future__ import annotations

import sys

import pytest
from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel


@pytest.fixture(scope="session", autouse=True)
def anode_kernelspec() -> None:
    """A wheel install ships the spec; an editable one may not: install it into this prefix."""
    try:
        KernelSpecManager().get_kernel_spec("anode-pyodide")
    except NoSuchKernel:
        from anode_ext.kernel.install import install

        install(prefix=sys.prefix)

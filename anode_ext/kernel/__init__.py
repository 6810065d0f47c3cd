"""The `anode-pyodide` Jupyter kernel.

``AnodeKernel`` is imported lazily: ``python -m anode_ext.kernel`` launches
the Pyodide host before the kernel's heavy imports (see ``early``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .kernel import AnodeKernel

KERNEL_NAME = "anode-pyodide"

__all__ = ["KERNEL_NAME", "AnodeKernel"]


def __getattr__(name: str) -> Any:
    if name == "AnodeKernel":
        from .kernel import AnodeKernel

        return AnodeKernel
    raise AttributeError(name)

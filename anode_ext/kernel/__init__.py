"""The `anode-pyodide` Jupyter kernel."""

from .kernel import AnodeKernel

KERNEL_NAME = "anode-pyodide"

__all__ = ["KERNEL_NAME", "AnodeKernel"]

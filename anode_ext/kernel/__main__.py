"""`python -m anode_ext.kernel`: run the kernel, or `install` its spec."""

from __future__ import annotations

import sys


def main() -> None:
    if sys.argv[1:2] == ["install"]:
        from .install import main as install

        sys.exit(install(sys.argv[2:]))
    from . import early

    early.launch()  # before the imports below: Pyodide boots meanwhile
    from ipykernel.kernelapp import IPKernelApp

    from .kernel import AnodeKernel

    # No user code runs in this process (cells run in Pyodide), so its own
    # stdout and stderr stay its log's, not iopub streams: no fd-capture
    # thread, and ipykernel's flush before every reply costs nothing.
    IPKernelApp.launch_instance(kernel_class=AnodeKernel, outstream_class=None)


if __name__ == "__main__":
    main()

"""`make demo`: the sample notebook through the log and back out."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from .cli import build_parser, import_notebook

SAMPLE = Path(__file__).parent / "examples" / "demo.ipynb"


def main(args: argparse.Namespace) -> int:
    out = Path(tempfile.mkdtemp(prefix="anode-demo-"))
    store = out / "demo.anode"
    head = import_notebook(SAMPLE, store)
    print(f"== imported {SAMPLE.name} into {store} ({head} events)")
    parser = build_parser()
    print("== anode log")
    log = parser.parse_args(["log", str(store)])
    log.func(log)
    exported = out / "demo.ipynb"
    export = parser.parse_args(["export", str(store), "-o", str(exported)])
    export.func(export)
    print(f"== exported to {exported}")
    if args.no_server:
        return 0
    return serve(out, args.port)


def serve(folder: Path, port: int) -> int:
    """JupyterLab with the extension and the demo notebook on anode-pyodide."""
    import os
    import subprocess
    import sys

    ensure_kernelspec()
    write_demo_notebook(folder)
    cmd = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        f"--port={port}",
        f"--ServerApp.root_dir={folder}",
        "--ServerApp.jpserver_extensions=anode_ext=True",
        "--LabApp.default_url=/lab/tree/demo.ipynb",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    print(f"== JupyterLab with Anode on {folder}; open the URL it prints below (Ctrl-C stops)")
    try:
        return subprocess.call(cmd)
    except KeyboardInterrupt:
        return 0


def ensure_kernelspec() -> None:
    """anode-pyodide where JupyterLab finds it: an editable install does not place the spec."""
    import sys

    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        KernelSpecManager().get_kernel_spec("anode-pyodide")
    except NoSuchKernel:
        from .kernel.install import install

        install(prefix=sys.prefix)


def write_demo_notebook(folder: str | Path) -> Path:
    """The sample notebook set to open on anode-pyodide (`make demo`, Binder's postBuild)."""
    import nbformat

    nb = nbformat.read(SAMPLE, as_version=4)  # type: ignore[no-untyped-call]
    nb.metadata["kernelspec"] = {
        "name": "anode-pyodide",
        "display_name": "Python (Anode, Pyodide)",
        "language": "python",
    }
    path = Path(folder) / "demo.ipynb"
    nbformat.write(nb, path)  # type: ignore[no-untyped-call]
    return path

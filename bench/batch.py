"""Batch runs (nbclient, papermill) of anode-pyodide beside ipykernel, in one run.

- nbclient, a 50-cell notebook (`x = sum(range(...)); print(x)`), timed from
  before the kernel starts until `execute()` returns (its shutdown included:
  that is what a batch job waits for);
- papermill, a batch of notebooks (12 notebooks of 24 mixed cells: prints,
  results, a function, a loop, a display, an error caught), one kernel each;
- an idle kernel's proportional set size (PSS, /proc/PID/smaps_rollup: what
  it really adds when many run; RSS beside it), the kernel process and its
  children (anode-pyodide: the Node runtime).

anode-pyodide runs twice: booting its own runtime (ANODE_POOL=0, the default)
and with the warm pool (ANODE_POOL=1: the kernel is a standby kernel process
from the kernel pool, its runtime from the runtime pool; both services
started by an untimed run first). The three take turns (--repeats) and medians are reported.
Last line: {"bench": "batch", ..., "anchor": "ipykernel", "ratio": nbclient
ours (own boot, the default) / theirs}.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import nbformat
from jupyter_client.manager import start_new_kernel
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_notebook

from anode_ext.kernel import pool as kernel_pool
from anode_ext.runtime import pool

# label: (kernel name, environment); the warm pool's service is started (and
# warmed) by an untimed run before the turns, as a user's earlier run would.
KERNELS = {
    "anode": ("anode-pyodide", {"ANODE_POOL": "0"}),
    "anode_pool": ("anode-pyodide", {"ANODE_POOL": "1"}),
    "ipykernel": ("python3", {}),
}


def fifty() -> Any:
    return new_notebook(
        cells=[new_code_cell(f"x = sum(range({1000 + i}))\nprint(x)") for i in range(50)]
    )


def mixed(seed: int) -> Any:
    """24 cells of the kinds teaching notebooks have."""
    cells = [
        "import math, statistics, json",
        f"data = [(i * {seed + 3}) % 17 for i in range(200)]",
        "print(len(data), sum(data))",
        "statistics.mean(data), statistics.median(data)",
        "def fib(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a",
        "[fib(i) for i in range(15)]",
        "for i in range(5):\n    print(i, math.sqrt(i))",
        "from IPython.display import display, Markdown\ndisplay(Markdown('**bold**'))",
        "try:\n    1 / 0\nexcept ZeroDivisionError as e:\n    print('caught', e)",
        "words = 'the quick brown fox jumps over the lazy dog'.split()",
        "sorted(words, key=len)",
        "{w: len(w) for w in words}",
        "json.dumps({'a': [1, 2, 3]})",
        "class Point:\n    def __init__(self, x, y):\n        self.x, self.y = x, y\n"
        "    def __repr__(self):\n        return f'Point({self.x}, {self.y})'",
        "[Point(i, i * i) for i in range(4)]",
        "total = 0\nfor d in data:\n    total += d\ntotal",
        "squares = list(map(lambda v: v * v, range(30)))\nprint(squares[-1])",
        "import itertools\nlist(itertools.islice(itertools.count(), 10))",
        "text = '\\n'.join(f'line {i}' for i in range(50))\nprint(text[:40])",
        "max(data), min(data)",
        "s = set(data)\nlen(s)",
        "import random\nrandom.seed(1)\nrandom.random() < 1",
        "f'{math.pi:.5f}'",
        "print('done')",
    ]
    return new_notebook(cells=[new_code_cell(c) for c in cells])


def nbclient_run(name: str) -> float:
    t0 = time.perf_counter()
    NotebookClient(fifty(), kernel_name=name, timeout=120).execute()
    return time.perf_counter() - t0


def papermill_batch(name: str, count: int, folder: Path) -> float:
    import papermill

    paths = []
    for i in range(count):
        p = folder / f"nb{i}.ipynb"
        nbformat.write(mixed(i), p)
        paths.append(p)
    t0 = time.perf_counter()
    for p in paths:
        papermill.execute_notebook(
            str(p), str(p.with_suffix(".out.ipynb")), kernel_name=name, progress_bar=False
        )
    return time.perf_counter() - t0


def _children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        kids = (task / "children").read_text().split()
        out += [int(k) for k in kids]
    return out + [g for k in list(out) for g in _children(k)]


def _memory(pid: int) -> tuple[int, int]:
    """PSS and RSS of a process, kB."""
    values = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        parts = line.split()
        if parts and parts[0] in ("Pss:", "Rss:"):
            values[parts[0]] = int(parts[1])
    return values["Pss:"], values["Rss:"]


def idle_memory(name: str) -> dict[str, float]:
    km, kc = start_new_kernel(kernel_name=name, startup_timeout=120)
    try:
        reply = kc.execute_interactive("1 + 1", timeout=120, output_hook=lambda msg: None)
        assert reply["content"]["status"] == "ok"
        time.sleep(3)  # idle: after the boot's warm-up and collection
        pids = [km.provisioner.process.pid]
        pids += _children(pids[0])
        pss = rss = 0
        for pid in pids:
            p, r = _memory(pid)
            pss += p
            rss += r
        return {
            "pss_mb": round(pss / 1024, 1),
            "rss_mb": round(rss / 1024, 1),
            "processes": len(pids),
        }
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def use(label: str) -> str:
    """The kernel name of a label, its environment set for the kernels started next."""
    name, env = KERNELS[label]
    os.environ.pop("ANODE_POOL", None)
    os.environ.update(env)
    return name


def pool_memory() -> dict[str, float]:
    """The warm pool's services and what they keep ready (a runtime, a standby kernel)."""
    pss = rss = 0
    count = 0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if {pool.SERVICE_MODULE.encode(), kernel_pool.SERVICE_MODULE.encode()} & set(cmd):
            pids = [int(proc.name), *_children(int(proc.name))]
            for pid in pids:
                p, r = _memory(pid)
                pss, rss, count = pss + p, rss + r, count + 1
    return {"pss_mb": round(pss / 1024, 1), "rss_mb": round(rss / 1024, 1), "processes": count}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3, help="turns of each kernel")
    parser.add_argument("--notebooks", type=int, default=12, help="notebooks in the batch")
    args = parser.parse_args()
    nbc: dict[str, list[float]] = {k: [] for k in KERNELS}
    batch: dict[str, list[float]] = {k: [] for k in KERNELS}
    nbclient_run(use("anode_pool"))  # starts the pools' services
    time.sleep(3)  # their first runtime and standby kernel ready
    for _ in range(args.repeats):
        for label in KERNELS:
            nbc[label].append(nbclient_run(use(label)))
            with tempfile.TemporaryDirectory() as folder:
                batch[label].append(papermill_batch(use(label), args.notebooks, Path(folder)))
            print(
                label,
                "nbclient",
                round(nbc[label][-1], 2),
                "batch",
                round(batch[label][-1], 2),
                flush=True,
            )
    # A kernel and its own runtime (a pooled runtime is the service's child).
    memory = {label: idle_memory(use(label)) for label in ("anode", "ipykernel")}
    result: dict[str, Any] = {"bench": "batch"}
    for label in KERNELS:
        result[f"nbclient_50_cells_s_{label}"] = round(statistics.median(nbc[label]), 2)
        result[f"papermill_{args.notebooks}_notebooks_s_{label}"] = round(
            statistics.median(batch[label]), 2
        )
        if label in memory:
            result[f"idle_{label}"] = memory[label]
    result["idle_pool_service"] = pool_memory()
    for label in ("anode", "anode_pool"):
        result[f"batch_ratio_{label}"] = round(
            statistics.median(batch[label]) / statistics.median(batch["ipykernel"]), 2
        )
        result[f"nbclient_ratio_{label}"] = round(
            statistics.median(nbc[label]) / statistics.median(nbc["ipykernel"]), 2
        )
    result["anchor"] = "ipykernel"
    result["ratio"] = result["nbclient_ratio_anode"]
    print(json.dumps(result))


if __name__ == "__main__":
    main()

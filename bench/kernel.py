"""anode-pyodide beside python3 (ipykernel), the same measurements in the same run.

- start -> kernel_info reply, start -> first result (`1+1`)
- execute round trip of `1+1` until reply and idle (p50, p99)
- 100,000 printed lines until the reply (every line received on iopub)
- nbclient on a 50-cell notebook (cells-only time: execute() minus kernel start)

Starts and nbclient runs are repeated (--repeats, the two kernels taking turns,
so that a busy moment of the machine hits both) and their medians reported:
on a small shared machine a single start varies by a second or more.

Last line: {"bench": "kernel", ..., "anchor": "ipykernel", "ratio": round trip p50 ours/theirs}.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from typing import Any

from jupyter_client.manager import KernelManager
from jupyter_core.utils import run_sync
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_notebook


def start(name: str, cwd: str) -> tuple[KernelManager, Any, float, float]:
    t0 = time.perf_counter()
    km = KernelManager(kernel_name=name)
    km.start_kernel(cwd=cwd)
    kc = km.client()
    kc.start_channels()
    kc.wait_for_ready(timeout=300)
    info = time.perf_counter() - t0
    reply = kc.execute_interactive("1+1", timeout=300)
    assert reply["content"]["status"] == "ok"
    return km, kc, info, time.perf_counter() - t0


def round_trips(kc: Any, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        kc.execute_interactive("1+1", timeout=60, output_hook=lambda m: None)
        out.append(time.perf_counter() - t0)
    return out


def lines(kc: Any, n: int) -> float:
    got = [0]

    def hook(msg: dict[str, Any]) -> None:
        if msg["msg_type"] == "stream":
            got[0] += msg["content"]["text"].count("\n")

    t0 = time.perf_counter()
    kc.execute_interactive(f"for i in range({n}): print(i)", timeout=600, output_hook=hook)
    dt = time.perf_counter() - t0
    assert got[0] == n, got[0]
    return dt


def interrupts(km: KernelManager, kc: Any, n: int) -> list[float]:
    """Seconds from interrupt_kernel() to the error reply of a busy loop."""
    out = []
    for _ in range(n):
        msg_id = kc.execute("while True: pass")
        time.sleep(0.5)
        t0 = time.perf_counter()
        km.interrupt_kernel()
        while True:
            reply = kc.get_shell_msg(timeout=60)
            if reply["parent_header"].get("msg_id") == msg_id:
                break
        out.append(time.perf_counter() - t0)
        assert reply["content"]["ename"] == "KeyboardInterrupt", reply["content"]
    return out


def nbclient_cells(name: str, cwd: str, cells: int) -> float:
    sources = [f"x{i} = sum(range({i * 100}))\nprint(x{i})" for i in range(cells)]
    nb = new_notebook(cells=[new_code_cell(s) for s in sources])
    client = NotebookClient(nb, kernel_name=name, timeout=120, startup_timeout=300)
    with client.setup_kernel(cwd=cwd):
        run_sync(client.kc.execute_interactive)("1", timeout=300)  # boot done: time cells only
        t0 = time.perf_counter()
        for index, cell in enumerate(nb.cells):
            client.execute_cell(cell, index)
        return time.perf_counter() - t0


def measure(name: str, args: argparse.Namespace) -> dict[str, float]:
    cwd = tempfile.mkdtemp(prefix=f"bench-{name}-")
    km, kc, info, first = start(name, cwd)
    try:
        rt = round_trips(kc, args.round_trips)
        printed = lines(kc, args.lines)
        stopped = interrupts(km, kc, 5)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=False)
    qs = statistics.quantiles(rt, n=100)
    return {
        "start_to_kernel_info_s": info,
        "start_to_first_result_s": first,
        "round_trip_p50_ms": round(statistics.median(rt) * 1000, 2),
        "round_trip_p99_ms": round(qs[98] * 1000, 2),
        "lines_s": round(printed, 3),
        "interrupt_median_s": round(statistics.median(stopped), 3),
        "interrupt_max_s": round(max(stopped), 3),
    }


def start_only(name: str) -> tuple[float, float]:
    km, kc, info, first = start(name, tempfile.mkdtemp(prefix=f"bench-{name}-"))
    kc.stop_channels()
    km.shutdown_kernel(now=False)
    return info, first


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--round-trips", type=int, default=200)
    p.add_argument("--lines", type=int, default=100_000)
    p.add_argument("--cells", type=int, default=50)
    p.add_argument("--repeats", type=int, default=3, help="starts and nbclient runs")
    args = p.parse_args()
    names = {"anode-pyodide": "ours", "python3": "theirs"}
    figures = {side: measure(name, args) for name, side in names.items()}
    starts = {
        side: [(f["start_to_kernel_info_s"], f["start_to_first_result_s"])]
        for side, f in figures.items()
    }
    nbc: dict[str, list[float]] = {side: [] for side in names.values()}
    for i in range(args.repeats):
        for name, side in names.items():
            if i:
                starts[side].append(start_only(name))
            nbc[side].append(nbclient_cells(name, tempfile.mkdtemp(), args.cells))
    for side, f in figures.items():
        f["start_to_kernel_info_s"] = round(statistics.median(a for a, _ in starts[side]), 3)
        f["start_to_first_result_s"] = round(statistics.median(b for _, b in starts[side]), 3)
        f["nbclient_cells_s"] = round(statistics.median(nbc[side]), 3)
    ours, theirs = figures["ours"], figures["theirs"]
    result: dict[str, Any] = {"bench": "kernel", "repeats": args.repeats}
    for key, value in ours.items():
        result[key] = value
        result[f"ipykernel_{key}"] = theirs[key]
        result[f"{key}_ratio"] = round(value / theirs[key], 2) if theirs[key] else None
        print(
            f"{key:<26} anode {value:>9}   ipykernel {theirs[key]:>9}   x{result[f'{key}_ratio']}"
        )
    for side in names.values():
        runs = ", ".join(f"{b:.2f}" for _, b in starts[side])
        print(f"{side}: starts to first result {runs}; nbclient {nbc[side]}")
    result["anchor"] = "ipykernel"
    result["ratio"] = result["round_trip_p50_ms_ratio"]
    print(json.dumps(result))


if __name__ == "__main__":
    main()

"""The Pyodide runtime against ipykernel, measured in the same run.

Boot to first result (cold, and from the memory snapshot) against an
ipykernel started with jupyter_client; the host-level round trip of ``1+1``
and of a cell raising an error (its coloured traceback);
100,000 printed lines until the last is received; a CPU loop against the host's
CPython; the idle RSS of the Node process. The last line is one JSON object;
``ratio`` is snapshot boot-to-first-result over ipykernel's (lower is better).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from jupyter_client.manager import start_new_async_kernel

from anode_ext.runtime import PyodideHost
from anode_ext.runtime.process import rss_mb

LINES = 100_000
PRINT_CODE = f"for i in range({LINES}):\n    print(i)"
CPU_CODE = "s = 0\nfor i in range(3_000_000):\n    s += i * i\n"
ERROR_CODE = "def f(x):\n    return x / 0\nf(1)"  # a two-frame coloured traceback


async def ours_boot(cache: Path, work: Path) -> tuple[float, PyodideHost]:
    t0 = time.perf_counter()
    host = PyodideHost(work, snapshot_dir=cache)
    await host.start()
    reply = await host.execute("1+1")
    assert reply.status == "ok"
    return time.perf_counter() - t0, host


async def ours_lines(host: PyodideHost) -> float:
    last = str(LINES - 1) + "\n"
    seen = asyncio.Event()

    def on(ev: dict[str, Any]) -> None:
        if ev["kind"] == "output" and ev["output"].get("text", "").endswith(last):
            seen.set()

    t0 = time.perf_counter()
    await host.execute(PRINT_CODE, on_output=on)
    await seen.wait()
    return time.perf_counter() - t0


def _quiet(msg: dict[str, Any]) -> None:
    """Keep kernel outputs off our stdout."""


async def ipykernel_figures() -> dict[str, float]:
    t0 = time.perf_counter()
    km, kc = await start_new_async_kernel(kernel_name="python3")
    try:
        await kc.execute_interactive("1+1", output_hook=_quiet, timeout=60)
        boot = time.perf_counter() - t0
        trips = []
        for _ in range(20):
            t = time.perf_counter()
            await kc.execute_interactive("1+1", output_hook=_quiet, timeout=60)
            trips.append(time.perf_counter() - t)
        errors = []
        for _ in range(10):
            t = time.perf_counter()
            await kc.execute_interactive(ERROR_CODE, output_hook=_quiet, timeout=60)
            errors.append(time.perf_counter() - t)
        last = str(LINES - 1) + "\n"
        seen = asyncio.Event()

        def hook(msg: dict[str, Any]) -> None:
            if msg["msg_type"] == "stream" and msg["content"]["text"].endswith(last):
                seen.set()

        t = time.perf_counter()
        await kc.execute_interactive(PRINT_CODE, output_hook=hook, timeout=300)
        await asyncio.wait_for(seen.wait(), 60)
        lines = time.perf_counter() - t
    finally:
        kc.stop_channels()
        await km.shutdown_kernel(now=True)
    return {
        "boot": boot,
        "rt": statistics.median(trips),
        "error": statistics.median(errors),
        "lines": lines,
    }


def anon_mb(pid: int) -> int:
    """Anonymous memory only: RSS less the pages of files (the node binary's
    code, ~50 MB, is shared by every runtime through the page cache)."""
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Anonymous:"):
                return int(line.split()[1]) // 1024
    return 0


def cpython_cpu() -> float:
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", CPU_CODE], check=True)
    return time.perf_counter() - t


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cache, work = Path(tmp) / "cache", Path(tmp) / "work"
        work.mkdir()
        cold, host = await ours_boot(cache, work)
        await host.close()
        snap, host = await ours_boot(cache, work)
        try:
            trips = []
            for _ in range(20):
                t = time.perf_counter()
                await host.execute("1+1")
                trips.append(time.perf_counter() - t)
            rt = statistics.median(trips)
            errors = []
            for _ in range(10):
                t = time.perf_counter()
                await host.execute(ERROR_CODE)
                errors.append(time.perf_counter() - t)
            err = statistics.median(errors)
            lines = await ours_lines(host)
            t = time.perf_counter()
            await host.execute(CPU_CODE)
            cpu = time.perf_counter() - t
            await asyncio.sleep(2)
            rss = rss_mb(host.pid or 0) or 0
            anon = anon_mb(host.pid or 0)
        finally:
            await host.close()
    ipk = await ipykernel_figures()
    cpu_native = cpython_cpu()
    print(f"boot to first result, cold:     {cold:8.2f} s")
    print(f"boot to first result, snapshot: {snap:8.2f} s   ipykernel {ipk['boot']:.2f} s")
    print(
        f"1+1 round trip (p50):           {rt * 1000:8.2f} ms  ipykernel {ipk['rt'] * 1000:.2f} ms"
    )
    print(
        f"error round trip (p50):         {err * 1000:8.2f} ms  ipykernel {ipk['error'] * 1000:.2f} ms"
    )
    print(f"{LINES} printed lines:        {lines:8.2f} s   ipykernel {ipk['lines']:.2f} s")
    print(
        f"CPU loop:                       {cpu:8.2f} s   host CPython {cpu_native:.2f} s (incl. start)"
    )
    print(f"idle RSS of node:               {rss:8d} MB   of which anonymous {anon} MB")
    figures = {
        "bench": "runtime",
        "boot_cold_s": round(cold, 3),
        "boot_snapshot_s": round(snap, 3),
        "ipykernel_boot_s": round(ipk["boot"], 3),
        "roundtrip_p50_ms": round(rt * 1000, 3),
        "ipykernel_roundtrip_p50_ms": round(ipk["rt"] * 1000, 3),
        "error_roundtrip_p50_ms": round(err * 1000, 3),
        "ipykernel_error_roundtrip_p50_ms": round(ipk["error"] * 1000, 3),
        "lines_100k_s": round(lines, 3),
        "ipykernel_lines_100k_s": round(ipk["lines"], 3),
        "cpu_loop_s": round(cpu, 3),
        "cpython_cpu_loop_s": round(cpu_native, 3),
        "idle_rss_mb": rss,
        "idle_anon_mb": anon,
        "anchor": "ipykernel",
        "ratio": round(snap / ipk["boot"], 3),
        "ratio_of": "boot_snapshot_s / ipykernel_boot_s, lower is better",
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    asyncio.run(main())

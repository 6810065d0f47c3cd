"""End to end over the websocket: request -> first output -> completed, warm runtime.

Ours: a real `jupyter server` with the extension; a sync client requests
`print(i)` cells one after another and times, from the push, the first output
event and the completion event it sees come back. The anchor: the same cells
sent to an ipykernel through jupyter_client (execute -> first stream -> reply),
in the same run.

Last line: {"bench": "e2e", ..., "anchor": "ipykernel", "ratio": completed p50 ours/theirs}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from jupyter_client.manager import start_new_kernel

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from anode_ext.log import catalogue as ev  # noqa: E402
from anode_ext.log.remote import RemoteLog  # noqa: E402
from anode_ext.runtime.run import wait_final  # noqa: E402
from tests.server.real import TOKEN, Server  # noqa: E402


def _id() -> str:
    return uuid.uuid4().hex


async def _ours(server: Server, nb: str, n: int) -> tuple[list[float], list[float]]:
    client = await RemoteLog(server.url, nb, token=TOKEN).start()
    warm = _id()  # the first cell waits for the runtime to come up: not timed
    await client.push([(_id(), ev.ExecutionRequested(execution_id=warm, cell_id=None, code="1"))])
    assert await wait_final(client, warm, 300)
    firsts, dones = [], []
    for i in range(n):
        x = _id()
        t0 = time.perf_counter()
        code = f"print({i})"
        await client.push([(_id(), ev.ExecutionRequested(execution_id=x, cell_id=None, code=code))])
        first = None
        while True:
            head = client.state.t.head
            out = client.state.t.outputs.get(x)
            if first is None and out is not None and out.outputs:
                first = time.perf_counter() - t0
            if client.state.t.executions[x].state in ("completed", "failed", "cancelled"):
                break
            await client.wait(head, 5)
        done = time.perf_counter() - t0
        firsts.append(first if first is not None else done)
        dones.append(done)
    await client.close()
    return firsts, dones


def _theirs(n: int) -> tuple[list[float], list[float]]:
    km, kc = start_new_kernel(kernel_name="python3", cwd=tempfile.mkdtemp())
    try:
        kc.execute_interactive("1", timeout=60, output_hook=lambda m: None)
        firsts, dones = [], []
        for i in range(n):
            first: list[float] = []
            t0 = time.perf_counter()

            def hook(msg: dict[str, Any], t0: float = t0, first: list[float] = first) -> None:
                if msg["msg_type"] == "stream" and not first:
                    first.append(time.perf_counter() - t0)

            kc.execute_interactive(f"print({i})", timeout=60, output_hook=hook)
            done = time.perf_counter() - t0
            firsts.append(first[0] if first else done)
            dones.append(done)
        return firsts, dones
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def _ms(xs: list[float], q: float) -> float:
    if q == 0.5:
        return round(statistics.median(xs) * 1000, 2)
    return round(statistics.quantiles(xs, n=100)[int(q * 100) - 1] * 1000, 2)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--cells", type=int, default=50)
    args = p.parse_args()
    server = Server(Path(tempfile.mkdtemp(prefix="bench-e2e-")), "--AnodeApp.warm_runtimes=1")
    server.start()
    try:
        nb = server.create("e2e")
        firsts, dones = asyncio.run(_ours(server, nb, args.cells))
    finally:
        server.stop()
    tf, td = _theirs(args.cells)
    result = {
        "bench": "e2e",
        "cells": args.cells,
        "first_output_p50_ms": _ms(firsts, 0.5),
        "completed_p50_ms": _ms(dones, 0.5),
        "completed_p99_ms": _ms(dones, 0.99),
        "ipykernel_first_output_p50_ms": _ms(tf, 0.5),
        "ipykernel_completed_p50_ms": _ms(td, 0.5),
        "ipykernel_completed_p99_ms": _ms(td, 0.99),
        "anchor": "ipykernel",
    }
    result["ratio"] = round(result["completed_p50_ms"] / result["ipykernel_completed_p50_ms"], 2)
    for key in ("first_output_p50_ms", "completed_p50_ms", "completed_p99_ms"):
        print(f"{key:<22} anode {result[key]:>9}   ipykernel {result['ipykernel_' + key]:>9}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()

"""Fan-out across replicas: one writer on replica A, 50 subscribers on each of two
replicas sharing one PostgreSQL, delivery latency; beside the same 100
subscribers on one replica of the same database (the anchor), and on one
server with the embedded SQLite store, in the same run.

A subscriber on B gets an event after A commits it, PostgreSQL notifies B,
and B reads the new rows by seq. Latency is receive time minus the send time
the event carries. `$ANODE_DATABASE_URL` names a database, or a throwaway
PostgreSQL is started (fsync on).

Last line: {"bench": "fanout_replicas", ..., "anchor": "one replica", "ratio": p99 two/one}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from fanout import ROOT, _quantiles, arguments, on_servers

sys.path.insert(0, str(ROOT))

from tests.server.real import Server


async def run(args: argparse.Namespace, replicas: int, url: str | None) -> list[float]:
    root = Path(tempfile.mkdtemp(prefix="bench-fanout-replicas-"))
    options = ["--AnodeApp.warm_runtimes=0"]
    if url:
        options.append(f"--AnodeApp.database_url={url}")
    servers = [Server(root, *options).start() for _ in range(replicas)]
    try:
        return await on_servers(args, servers)
    finally:
        for s in servers:
            s.stop()


def figures(args: argparse.Namespace, url: str) -> dict[str, Any]:
    fig: dict[str, Any] = {"bench": "fanout_replicas", "subscribers": args.subscribers}
    for name, replicas, db in (
        ("sqlite_one", 1, None),
        ("one", 1, url),
        ("two", 2, url),
    ):
        p50, p99 = _quantiles(asyncio.run(run(args, replicas, db)))
        fig[f"{name}_p50_ms"], fig[f"{name}_p99_ms"] = p50, p99
        print(f"{name:10} p50 {p50:8.2f} ms   p99 {p99:8.2f} ms", flush=True)
    fig["anchor"] = "one replica"
    fig["ratio"] = round(fig["two_p99_ms"] / fig["one_p99_ms"], 2)
    fig["ratio_p50"] = round(fig["two_p50_ms"] / fig["one_p50_ms"], 2)
    fig["ratio_is"] = "p99 delivery, two replicas / one (goal <= 2, and p99 < 50 ms)"
    return fig


def main() -> None:
    args = arguments(__doc__)
    url = os.environ.get("ANODE_DATABASE_URL")
    if url:
        fig = figures(args, url)
    else:
        from anode_ext.pgserver import ThrowawayPostgres

        with ThrowawayPostgres() as pg:
            fig = figures(args, pg.url)
    print(json.dumps(fig))


if __name__ == "__main__":
    main()

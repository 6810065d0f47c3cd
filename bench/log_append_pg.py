"""The PostgreSQL store's append path, beside the SQLite store and raw PostgreSQL
inserts of the same rows, in the same run.

PostgreSQL runs with fsync on and synchronous_commit on (each acknowledged
push is on disk). The anchor inserts the same envelope rows into a bare table
with the same primary key and unique id index, one statement (its own
transaction) per batch with the rows as binary arrays, over the same kind of
connection; ours also moves and locks the head row, checks the rules, folds
(twice: before and after the commit), and notifies. `$ANODE_DATABASE_URL` names a database, or a throwaway
PostgreSQL is started.

Last line: {"bench": "log_append_pg", ..., "anchor": "postgres_raw_insert", "ratio": ours/anchor}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from log_append import WHO, workload

from anode_ext.log import Store
from anode_ext.log.postgres import PgStore, connect


async def ours(url: str, events: list[dict[str, Any]], batch: int) -> float:
    blobs = [json.dumps(events[i : i + batch]).encode() for i in range(0, len(events), batch)]
    store = await PgStore.open(url, uuid.uuid4().hex, create=True)
    try:
        t0 = time.perf_counter()
        for blob in blobs:
            await store.push_json(blob, WHO)
        dt = time.perf_counter() - t0
        assert store.head == len(events)
    finally:
        await store.close()
    return len(events) / dt


async def raw(
    url: str, events: list[dict[str, Any]], batch: int, executemany: bool = False
) -> float:
    conn = await connect(url)
    table = f"bench_{uuid.uuid4().hex[:8]}"
    await conn.execute(
        f"CREATE TABLE {table} (notebook text, seq bigint, id text, name text, args text, "
        'client_id text, "user" text, at bigint, PRIMARY KEY (notebook, seq), '
        "UNIQUE (notebook, id))"
    )
    rows = [
        ("nb", n, e["id"], e["name"], json.dumps(e["args"]), "runtime", "bench", 0)
        for n, e in enumerate(events, 1)
    ]
    insert = (
        f"INSERT INTO {table} SELECT * FROM unnest(%b::text[], %b::bigint[], %b::text[], "
        "%b::text[], %b::text[], %b::text[], %b::text[], %b::bigint[])"
    )
    try:
        t0 = time.perf_counter()
        for i in range(0, len(rows), batch):
            if executemany:  # psycopg's usual way: a transaction, a pipeline of inserts
                async with conn.transaction(), conn.cursor() as cur:
                    await cur.executemany(
                        f"INSERT INTO {table} VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                        rows[i : i + batch],
                    )
                continue
            # the fastest plain way: one statement (its own transaction) per batch
            columns = [list(c) for c in zip(*rows[i : i + batch], strict=True)]
            await conn.execute(insert, columns)
        dt = time.perf_counter() - t0
    finally:
        await conn.execute(f"DROP TABLE {table}")
        await conn.close()
    return len(events) / dt


def sqlite(events: list[dict[str, Any]], batch: int, folder: Path) -> float:
    blobs = [json.dumps(events[i : i + batch]).encode() for i in range(0, len(events), batch)]
    with Store.open(folder / f"{uuid.uuid4().hex}.anode", create=True) as store:
        t0 = time.perf_counter()
        for blob in blobs:
            store.push_json(blob, WHO)
        return len(events) / (time.perf_counter() - t0)


async def run(url: str, single: int, batched: int, folder: Path) -> dict[str, Any]:
    fig: dict[str, Any] = {"bench": "log_append_pg"}
    one, many = workload(single), workload(batched)
    # Taking turns, twice, the best of each (the machine's load swings).
    for _ in range(2):
        for key, rate in (
            ("single_events_per_s", await ours(url, one, 1)),
            ("single_raw_pg_per_s", await raw(url, one, 1)),
            ("single_sqlite_store_per_s", sqlite(one, 1, folder)),
            ("batched_events_per_s", await ours(url, many, 100)),
            ("batched_raw_pg_per_s", await raw(url, many, 100)),
            ("batched_raw_pg_executemany_per_s", await raw(url, many, 100, True)),
            ("batched_sqlite_store_per_s", sqlite(many, 100, folder)),
        ):
            fig[key] = max(fig.get(key, 0), round(rate))
    fig["single_ratio"] = round(fig["single_events_per_s"] / fig["single_raw_pg_per_s"], 3)
    fig["anchor"] = "postgres_raw_insert"
    fig["ratio"] = round(fig["batched_events_per_s"] / fig["batched_raw_pg_per_s"], 3)
    fig["ratio_is"] = "rate ours/anchor for 100-event batches (higher is better; goal >= 0.5)"
    fig["ratio_vs_executemany"] = round(
        fig["batched_events_per_s"] / fig["batched_raw_pg_executemany_per_s"], 3
    )
    fig["vs_sqlite_store"] = round(
        fig["batched_events_per_s"] / fig["batched_sqlite_store_per_s"], 3
    )
    return fig


def main() -> None:
    import tempfile

    p = argparse.ArgumentParser()
    p.add_argument("--single", type=int, default=2000, help="events pushed one at a time")
    p.add_argument("--batched", type=int, default=50_000, help="events pushed 100 at a time")
    a = p.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="anode-bench-"))
    url = os.environ.get("ANODE_DATABASE_URL")
    if url:
        fig = asyncio.run(run(url, a.single, a.batched, folder))
    else:
        from anode_ext.pgserver import ThrowawayPostgres

        with ThrowawayPostgres() as pg:
            fig = asyncio.run(run(pg.url, a.single, a.batched, folder))
            fig["postgres"] = "throwaway, fsync on"
    print(json.dumps(fig))


if __name__ == "__main__":
    main()

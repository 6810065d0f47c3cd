"""The log's write and read paths, beside a raw SQLite insert of the same JSON in the same run.

Full path = validate (msgspec) + rules + fold + write events and tables in one
WAL transaction (synchronous=NORMAL, the store's default). The anchor inserts
the same envelope JSON into a bare table with the same pragmas.

Last line: {"bench": "log_append", ..., "anchor": "sqlite_raw_insert", "ratio": ours/anchor rate}.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import tempfile
import time
import uuid
from pathlib import Path

from anode_ext.log import Identity, Store

WHO = Identity("bench", "runtime")


def workload(n: int) -> list[dict]:
    """A realistic mix: cells edited and run, each run streaming outputs."""
    out: list[dict] = [{"name": "v1.RuntimeSessionStarted", "args": {"session_id": "s"}}]
    for i in range(50):
        out.append(
            {
                "name": "v1.CellCreated",
                "args": {
                    "cell_id": f"c{i}",
                    "cell_type": "code",
                    "source": f"print({i})",
                    "position": "V" + "V" * (i % 5) + str(i % 9 + 1),
                },
            }
        )
    k = 0
    while len(out) < n:
        x = f"x{k}"
        c = f"c{k % 50}"
        out.append(
            {
                "name": "v1.CellSourceChanged",
                "args": {"cell_id": c, "source": f"for i in range({k}):\n    print(i)"},
            }
        )
        out.append(
            {
                "name": "v1.ExecutionRequested",
                "args": {"execution_id": x, "cell_id": c, "code": "print(1)"},
            }
        )
        out.append({"name": "v1.ExecutionAssigned", "args": {"execution_id": x, "session_id": "s"}})
        out.append(
            {"name": "v1.ExecutionStarted", "args": {"execution_id": x, "execution_count": k + 1}}
        )
        for j in range(5):
            out.append(
                {
                    "name": "v1.OutputAppended",
                    "args": {
                        "execution_id": x,
                        "output": {
                            "output_type": "stream",
                            "name": "stdout",
                            "text": f"line {j} of a typical output\n",
                        },
                    },
                }
            )
        out.append({"name": "v1.ExecutionCompleted", "args": {"execution_id": x, "status": "ok"}})
        k += 1
    for e in out:
        e["id"] = uuid.uuid4().hex
    return out[:n]


def ours(path: Path, events: list[dict], batch: int) -> float:
    blobs = [json.dumps(events[i : i + batch]).encode() for i in range(0, len(events), batch)]
    with Store.open(path, create=True) as store:
        t0 = time.perf_counter()
        for blob in blobs:
            store.push_json(blob, WHO)
        dt = time.perf_counter() - t0
        assert store.head == len(events)
    return len(events) / dt


def raw(path: Path, events: list[dict], batch: int) -> float:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA wal_autocheckpoint=10000")
    db.execute(
        "CREATE TABLE events (seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, name TEXT, args TEXT, client_id TEXT, user TEXT, at INTEGER)"
    )
    rows = [(e["id"], e["name"], json.dumps(e["args"]), "runtime", "bench", 0) for e in events]
    t0 = time.perf_counter()
    for i in range(0, len(rows), batch):
        db.execute("BEGIN IMMEDIATE")
        db.executemany(
            "INSERT INTO events (id, name, args, client_id, user, at) VALUES (?,?,?,?,?,?)",
            rows[i : i + batch],
        )
        db.execute("COMMIT")
    dt = time.perf_counter() - t0
    db.close()
    return len(events) / dt


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--single", type=int, default=5000, help="events pushed one at a time")
    p.add_argument("--batched", type=int, default=100_000, help="events pushed 100 at a time")
    a = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="anode-bench-"))
    single_ev = workload(a.single)
    batched_ev = workload(a.batched)
    fig: dict[str, object] = {"bench": "log_append"}
    fig["single_events_per_s"] = round(ours(tmp / "s.anode", single_ev, 1))
    fig["single_raw_sqlite_per_s"] = round(raw(tmp / "s.db", single_ev, 1))
    fig["batched_events_per_s"] = round(ours(tmp / "b.anode", batched_ev, 100))
    fig["batched_raw_sqlite_per_s"] = round(raw(tmp / "b.db", batched_ev, 100))
    with Store.open(tmp / "b.anode") as store:
        t0 = time.perf_counter()
        state = store.replay()
        fig["replay_events_per_s"] = round(store.head / (time.perf_counter() - t0))
        assert state.t == store.state.t
        mid = store.head // 2
        t0 = time.perf_counter()
        store.state_at(mid)
        fig["state_at_middle_cold_s"] = round(time.perf_counter() - t0, 3)
        t0 = time.perf_counter()
        store.state_at(mid)
        fig["state_at_middle_warm_s"] = round(time.perf_counter() - t0, 3)
    fig["single_ratio"] = round(fig["single_events_per_s"] / fig["single_raw_sqlite_per_s"], 3)  # type: ignore[operator]
    fig["anchor"] = "sqlite_raw_insert"
    fig["ratio"] = round(fig["batched_events_per_s"] / fig["batched_raw_sqlite_per_s"], 3)  # type: ignore[operator]
    fig["ratio_is"] = "rate ours/anchor for 100-event batches (higher is better)"
    print(json.dumps(fig))


if __name__ == "__main__":
    main()

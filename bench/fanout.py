"""Fan-out: one writer, 100 websocket subscribers, delivery latency.

Ours: a real `jupyter server` with the extension; the writer pushes one event
every few ms on the sync websocket, 100 subscribers pull live. The floor: a
bare tornado websocket server (its own process too) that broadcasts each
message it gets to every other connection. Both are measured by the same
clients in this process: latency is receive time minus the send time the
message carries.

Last line: {"bench": "fanout", ..., "anchor": "tornado broadcast", "ratio": p99 ours/floor}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.server.real import TOKEN, Server, free_port  # noqa: E402

FLOOR = """
import sys
from tornado import ioloop, web, websocket
peers = set()
class Hub(websocket.WebSocketHandler):
    def open(self):
        self.set_nodelay(True)
        peers.add(self)
    def on_message(self, message):
        for p in list(peers):
            if p is not self:
                p.write_message(message)
    def on_close(self):
        peers.discard(self)
web.Application([(r"/ws", Hub)]).listen(int(sys.argv[1]), "127.0.0.1")
print("ready", flush=True)
ioloop.IOLoop.current().start()
"""


def _now_ms() -> float:
    return time.perf_counter() * 1000


async def _subscribe(
    url: str, headers: dict[str, str], first: str | None, sink: list[float]
) -> Any:
    ws = await websocket_connect(HTTPRequest(url, headers=headers), max_message_size=1 << 28)
    if first is not None:
        await ws.write_message(first)

    async def read() -> None:
        while (raw := await ws.read_message()) is not None:
            msg = json.loads(raw)
            now = _now_ms()
            if msg.get("type") == "events":
                for e in msg["events"]:
                    if e["name"] == "v1.CellSourceChanged":
                        sink.append(now - float(e["args"]["source"]))
            elif msg.get("type") == "tick":
                sink.append(now - float(msg["t"]))

    return ws, asyncio.ensure_future(read())


async def _measure(
    url: str | list[str],
    headers: dict[str, str],
    pull: str | None,
    make: Any,
    subscribers: int,
    messages: int,
    interval: float,
) -> list[float]:
    urls = [url] if isinstance(url, str) else url  # subscribers spread over them
    sinks: list[list[float]] = [[] for _ in range(subscribers)]
    subs = [
        await _subscribe(urls[k % len(urls)], headers, pull, sink) for k, sink in enumerate(sinks)
    ]
    writer = await websocket_connect(HTTPRequest(urls[0], headers=headers))
    await asyncio.sleep(1.0)  # every subscriber has its backlog
    for sink in sinks:
        sink.clear()
    for i in range(messages):
        await writer.write_message(make(i, _now_ms()))
        await asyncio.sleep(interval)
    deadline = time.monotonic() + 30
    while any(len(s) < messages for s in sinks) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    for ws, reader in subs:
        ws.close()
        reader.cancel()
    writer.close()
    got = [x for s in sinks for x in s]
    assert len(got) == subscribers * messages, f"{len(got)} of {subscribers * messages} delivered"
    return got


def _quantiles(xs: list[float]) -> tuple[float, float]:
    q = statistics.quantiles(xs, n=100)
    return round(statistics.median(xs), 2), round(q[98], 2)


async def on_servers(args: argparse.Namespace, servers: list[Server]) -> list[float]:
    """Our latencies: the writer on the first server, subscribers spread over all."""
    nb = servers[0].create("fanout")
    cell = {
        "id": uuid.uuid4().hex,
        "name": "v1.CellCreated",
        "args": {"cell_id": "c", "cell_type": "code", "source": "", "position": "V"},
    }
    assert servers[0].call(f"/anode/api/notebooks/{nb}/events", {"events": [cell]})[0] == 200
    urls = [f"ws://127.0.0.1:{s.port}/anode/api/notebooks/{nb}/sync" for s in servers]

    def make(i: int, t: float) -> str:
        event = {
            "id": uuid.uuid4().hex,
            "name": "v1.CellSourceChanged",
            "args": {"cell_id": "c", "source": repr(t)},
        }
        return json.dumps({"type": "push", "req": i, "events": [event]})

    pull = json.dumps({"type": "pull", "after": 0})
    headers = {"Authorization": f"token {TOKEN}"}
    return await _measure(urls, headers, pull, make, args.subscribers, args.messages, args.interval)


async def ours(args: argparse.Namespace) -> list[float]:
    root = Path(tempfile.mkdtemp(prefix="bench-fanout-"))
    server = Server(root, "--AnodeApp.warm_runtimes=0").start()
    try:
        return await on_servers(args, [server])
    finally:
        server.stop()


async def floor(args: argparse.Namespace) -> list[float]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", FLOOR, str(port)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"

        def make(i: int, t: float) -> str:
            return json.dumps({"type": "tick", "t": repr(t)})

        url = f"ws://127.0.0.1:{port}/ws"
        return await _measure(url, {}, None, make, args.subscribers, args.messages, args.interval)
    finally:
        proc.terminate()
        proc.wait(10)


def arguments(doc: str | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=doc)
    p.add_argument("--subscribers", type=int, default=100)
    p.add_argument("--messages", type=int, default=200)
    p.add_argument("--interval", type=float, default=0.02, help="seconds between writes")
    return p.parse_args()


def main() -> None:
    args = arguments(__doc__)
    base = asyncio.run(floor(args))
    mine = asyncio.run(ours(args))
    p50, p99 = _quantiles(mine)
    f50, f99 = _quantiles(base)
    print(f"anode  p50 {p50:8.2f} ms   p99 {p99:8.2f} ms")
    print(f"floor  p50 {f50:8.2f} ms   p99 {f99:8.2f} ms")
    result = {
        "bench": "fanout",
        "subscribers": args.subscribers,
        "messages": args.messages,
        "p50_ms": p50,
        "p99_ms": p99,
        "floor_p50_ms": f50,
        "floor_p99_ms": f99,
        "anchor": "tornado broadcast",
        "ratio": round(p99 / f99, 2) if f99 else None,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()

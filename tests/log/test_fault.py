"""A writer killed with SIGKILL mid-stream leaves a store that opens, with every acked event."""

import os
import signal
import subprocess
import sys
import time

from anode_ext.log import Store

WRITER = r"""
import sys
from anode_ext.log import Store, Identity
store = Store.open(sys.argv[1], create=True)
who = Identity("w", "w")
n = 0
while True:
    batch = [{"id": f"b{n}-{i}", "name": "v1.NotebookMetadataSet", "args": {"key": f"k{i}", "value": "x" * 200}}
             for i in range(20)]
    store.push(batch, who)
    print(n, flush=True)
    n += 1
"""


def test_sigkill_during_appends_loses_nothing_acknowledged(tmp_path):
    for round_ in range(3):
        path = tmp_path / f"nb{round_}.anode"
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True
        )
        acked = -1
        deadline = time.monotonic() + 30
        while acked < 30 + 40 * round_ and time.monotonic() < deadline:
            acked = int(proc.stdout.readline())
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        rest = proc.stdout.read().split()
        acked = max([acked, *map(int, rest)])
        with Store.open(path) as store:
            ids = {env.id for env in store.iter_events()}
            batches = {}
            for event_id in ids:
                b, _ = event_id[1:].split("-")
                batches[int(b)] = batches.get(int(b), 0) + 1
            assert all(count == 20 for count in batches.values()), "a partial batch"
            assert set(range(acked + 1)) <= set(batches)
            assert store.head == len(ids) == 20 * len(batches)
            assert [e.seq for e in store.iter_events()] == list(range(1, store.head + 1))
            assert store.replay().t == store.state.t

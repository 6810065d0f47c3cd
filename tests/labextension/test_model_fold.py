"""The panel folds the log in TypeScript (labextension/src/model.ts) as the
server folds it in Python (anode_ext/log/materialize.py): for the same
generated logs, the queue, the runtimes and the input requests agree, field
by field. The compiled model runs in Node (the one the runtime uses)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from anode_ext.log import Refused, Store
from anode_ext.log.view import state_json
from anode_ext.runtime.node import find_node

from ..log.gen import WHO, queue_step, with_id

MODEL = Path(__file__).resolve().parents[2] / "labextension" / "lib" / "model.js"
RUNNER = """
import { readFileSync } from 'node:fs';
import { QueueModel } from './model.mjs';
const events = JSON.parse(readFileSync(0, 'utf8'));
const m = new QueueModel();
for (const e of events) m.apply(e);
const rows = map => Array.from(map.values());
process.stdout.write(JSON.stringify({
  executions: rows(m.executions), runtimes: rows(m.runtimes), inputs: rows(m.inputs)
}));
"""


def ts_fold(where: Path, events: list[dict[str, Any]]) -> dict[str, Any]:
    if not (where / "run.mjs").exists():
        shutil.copy(MODEL, where / "model.mjs")
        (where / "run.mjs").write_text(RUNNER)
    done = subprocess.run(
        [find_node(), str(where / "run.mjs")],
        input=json.dumps(events),
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(json.loads(done.stdout))


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data(), steps=st.integers(1, 60))
def test_the_panel_and_the_server_fold_the_same_queue(tmp_path_factory, data, steps) -> None:
    assert MODEL.exists(), "build the labextension first (make install)"
    where = tmp_path_factory.mktemp("fold")
    with Store.open(where / "nb.anode", create=True) as store:
        for _ in range(steps):
            batch, who = queue_step(data.draw, store.state)
            try:
                store.push([with_id(e) for e in batch], WHO[who])
            except Refused:
                pass
        events = [json.loads(raw) for raw in store.events_json(0)]
        want = state_json(store.state)
    got = ts_fold(where, events)
    assert got["executions"] == want["executions"]
    assert got["runtimes"] == want["runtimes"]
    assert got["inputs"] == want["input_requests"]

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
from anode_ext.log.state import State
from anode_ext.log.view import state_json
from anode_ext.runtime.node import find_node

from ..log.gen import RUNTIMES, WHO, with_id

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


def queue_step(draw: Any, state: State) -> tuple[list[dict[str, Any]], int]:
    """One push of a queue's life, weighted so executions get run: runs and Run
    Alls (batches, with or without stop-on-error), claims, starts, input asked
    and answered (or left), ends ok, in error or failed, cancels, lost runtimes."""
    t = state.t
    n = len(t.executions)

    def ev(name: str, **args: Any) -> dict[str, Any]:
        return {"name": f"v1.{name}", "args": args}

    options: list[tuple[int, Any]] = []
    batch = f"b{n}"
    stop = draw(st.booleans())
    options.append(
        (3, lambda: ([ev("ExecutionRequested", execution_id=f"q{n}", cell_id=None, code="1")], 0))
    )
    options.append(
        (
            2,
            lambda: (
                [
                    ev(
                        "ExecutionRequested",
                        execution_id=f"q{n + i}",
                        cell_id=None,
                        code=str(i),
                        batch=batch,
                        stop_on_error=stop,
                    )
                    for i in range(draw(st.integers(2, 4)))
                ],
                1,
            ),
        )
    )
    live = [r for r in t.runtimes.values() if r.state == "live"]
    if len(live) < 2:
        client = draw(st.sampled_from(sorted(RUNTIMES)))
        options.append(
            (
                2 if not live else 1,
                lambda: (
                    [ev("RuntimeSessionStarted", session_id=f"r{len(t.runtimes)}")],
                    RUNTIMES[client],
                ),
            )
        )
    first = state.first_pending()
    for rt in live:
        owner = RUNTIMES.get(rt.client_id, 4)
        options.append(
            (
                1,
                lambda rt=rt, owner=owner: (
                    [ev("RuntimeSessionEnded", session_id=rt.session_id, reason="gone")],
                    draw(st.sampled_from([owner, 4])),
                ),
            )
        )
        if rt.holding is None and first is not None:
            options.append(
                (
                    6,
                    lambda rt=rt, owner=owner: (
                        [ev("ExecutionAssigned", execution_id=first, session_id=rt.session_id)],
                        owner,
                    ),
                )
            )
        held = t.executions.get(rt.holding) if rt.holding else None
        if held is None:
            continue
        x = held.id
        if held.state == "assigned":
            options.append(
                (
                    6,
                    lambda x=x, owner=owner: (
                        [
                            ev(
                                "ExecutionStarted",
                                execution_id=x,
                                execution_count=draw(st.integers(1, 9)),
                            )
                        ],
                        owner,
                    ),
                )
            )
            options.append((1, lambda x=x: ([ev("ExecutionCancelled", execution_id=x)], 1)))
            continue
        options.append(
            (
                2,
                lambda x=x, owner=owner: (
                    [
                        ev(
                            "InputRequested",
                            execution_id=x,
                            prompt="?",
                            password=draw(st.booleans()),
                        )
                    ],
                    owner,
                ),
            )
        )
        options.append(
            (
                4,
                lambda x=x, owner=owner: (
                    [
                        ev(
                            "ExecutionCompleted",
                            execution_id=x,
                            status=draw(st.sampled_from(["ok", "ok", "error", "aborted"])),
                        )
                    ],
                    owner,
                ),
            )
        )
        options.append((1, lambda x=x: ([ev("ExecutionFailed", execution_id=x, reason="lost")], 4)))
        options.append((1, lambda x=x: ([ev("ExecutionCancelled", execution_id=x)], 0)))
    for req in t.inputs.values():
        if req.state == "pending":
            options.append(
                (
                    3,
                    lambda req=req: (
                        [ev("InputReplied", execution_id=req.execution_id, value="v")],
                        draw(st.sampled_from([0, 1])),
                    ),
                )
            )
    for x in list(state.pending)[:2]:
        options.append((1, lambda x=x: ([ev("ExecutionCancelled", execution_id=x)], 0)))
    weighted = [make for weight, make in options for _ in range(weight)]
    return draw(st.sampled_from(weighted))()


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

"""Hypothesis strategies: random pushes over small id pools, so many of them are valid."""

from __future__ import annotations

import uuid
from typing import Any

from hypothesis import strategies as st

from anode_ext.log import ADMIN, Identity

CELLS = ["c0", "c1", "c2"]
EXECS = ["x0", "x1", "x2", "x3"]
SESSIONS = ["s0", "s1"]
POSITIONS = ["F", "V", "k", "V5"]

WHO = [
    Identity("alice", "client-a"),
    Identity("bob", "client-b"),
    Identity("rt", "runtime-1"),
    Identity("rt", "runtime-2"),
    Identity("server", "server", frozenset({ADMIN})),
]

texts = st.text(alphabet="ab\n\r\x08 ", max_size=6)
outputs = st.one_of(
    st.builds(
        lambda n, t: {"output_type": "stream", "name": n, "text": t},
        st.sampled_from(["stdout", "stderr"]),
        texts,
    ),
    st.builds(
        lambda d, v: {
            "output_type": "display_data",
            "data": {"text/plain": v},
            "metadata": {},
            "transient": {"display_id": d},
        },
        st.sampled_from(["d0", "d1"]),
        texts,
    ),
    st.builds(
        lambda v: {
            "output_type": "execute_result",
            "data": {"text/plain": v},
            "metadata": {},
            "execution_count": 1,
        },
        texts,
    ),
    st.just({"output_type": "error", "ename": "E", "evalue": "v", "traceback": ["t"]}),
)

COMMS = ["m0", "m1", "m2"]
cell_id = st.sampled_from(CELLS)
comm_id = st.sampled_from(COMMS)
origin = st.sampled_from(["runtime", "client"])
# A widget's open or update (ipywidgets' protocol 2), with or without a binary part.
widget_data = st.builds(
    lambda v, binary: {
        "state": {"value": v, "_model_name": "IntSliderModel"},
        "buffer_paths": [["data"]] if binary else [],
    },
    st.integers(0, 9),
    st.booleans(),
)
ex_id = st.sampled_from(EXECS)
session = st.sampled_from(SESSIONS)


def _ev(name, **args):
    return st.fixed_dictionaries(
        {"name": st.just(f"v1.{name}"), "args": st.fixed_dictionaries(args)}
    )


events = st.one_of(
    _ev(
        "CellCreated",
        cell_id=cell_id,
        cell_type=st.sampled_from(["code", "markdown"]),
        source=texts,
        position=st.sampled_from(POSITIONS),
    ),
    _ev("CellSourceChanged", cell_id=cell_id, source=texts),
    _ev("CellMoved", cell_id=cell_id, position=st.sampled_from(POSITIONS)),
    _ev("CellDeleted", cell_id=cell_id),
    _ev("CellTypeChanged", cell_id=cell_id, cell_type=st.sampled_from(["code", "markdown", "raw"])),
    _ev(
        "CellMetadataSet", cell_id=cell_id, key=st.sampled_from(["a", "b"]), value=st.integers(0, 3)
    ),
    _ev("NotebookMetadataSet", key=st.sampled_from(["a", "title"]), value=texts),
    _ev("RuntimeSessionStarted", session_id=session),
    _ev("RuntimeSessionEnded", session_id=session, reason=st.just("bye")),
    _ev("InterruptRequested", session_id=session),
    _ev(
        "ExecutionRequested",
        execution_id=ex_id,
        cell_id=st.one_of(st.none(), cell_id),
        code=st.just("1"),
    ),
    _ev("ExecutionAssigned", execution_id=ex_id, session_id=session),
    _ev("ExecutionStarted", execution_id=ex_id, execution_count=st.integers(1, 5)),
    _ev("OutputAppended", execution_id=ex_id, output=outputs),
    _ev(
        "DisplayUpdated",
        display_id=st.sampled_from(["d0", "d1"]),
        data=st.just({"text/plain": "u"}),
        execution_id=ex_id,
    ),
    _ev("OutputsCleared", execution_id=ex_id, wait=st.booleans()),
    _ev("InputRequested", execution_id=ex_id, prompt=st.just("?")),
    _ev("InputReplied", execution_id=ex_id, value=texts),
    _ev(
        "ExecutionCompleted", execution_id=ex_id, status=st.sampled_from(["ok", "error", "aborted"])
    ),
    _ev("ExecutionCancelled", execution_id=ex_id),
    _ev("ExecutionFailed", execution_id=ex_id, reason=st.just("lost")),
    _ev(
        "CommOpened",
        comm_id=comm_id,
        session_id=session,
        target_name=st.sampled_from(["jupyter.widget", "other"]),
        origin=origin,
        data=widget_data,
    ),
    # (No optional field sorts first: test_malformed_events drops the first one.)
    _ev(
        "CommMessage",
        comm_id=comm_id,
        origin=origin,
        data=st.builds(lambda d: {"method": "update", **d}, widget_data),
    ),
    _ev("CommClosed", comm_id=comm_id, origin=origin),
    _ev("CommsDelivered", session_id=session, seq=st.integers(0, 30)),
)


def with_id(event: dict) -> dict:
    return {"id": uuid.uuid4().hex, **event}


pushes = st.lists(
    st.tuples(st.lists(events, min_size=1, max_size=3), st.sampled_from(range(len(WHO)))),
    max_size=40,
)


# --- a generator that looks at the state, so most pushes are valid ------------

RUNTIMES = {"runtime-1": 2, "runtime-2": 3}


def smart_step(draw, state):
    """One push chosen among what the state allows (plus, now and then, anything)."""
    t = state.t
    options = []
    free_cells = [c for c in CELLS if c not in t.cells]
    if free_cells:
        options.append(
            lambda: (
                [
                    {
                        "name": "v1.CellCreated",
                        "args": {
                            "cell_id": draw(st.sampled_from(free_cells)),
                            "cell_type": draw(st.sampled_from(["code", "code", "markdown"])),
                            "source": draw(texts),
                            "position": draw(st.sampled_from(POSITIONS)),
                        },
                    }
                ],
                draw(st.sampled_from([0, 1])),
            )
        )
    if t.cells:
        cid = draw(st.sampled_from(sorted(t.cells)))
        options.append(
            lambda: (
                [{"name": "v1.CellSourceChanged", "args": {"cell_id": cid, "source": draw(texts)}}],
                1,
            )
        )
        options.append(
            lambda: (
                [
                    {
                        "name": "v1.CellMoved",
                        "args": {"cell_id": cid, "position": draw(st.sampled_from(POSITIONS))},
                    }
                ],
                0,
            )
        )
        options.append(lambda: ([{"name": "v1.CellDeleted", "args": {"cell_id": cid}}], 1))
    cell_options, options = options, []
    code = [c for c in sorted(t.cells) if t.cells[c].cell_type == "code"] + [None]
    free_ex = [f"q{i}" for i in range(len(t.executions), len(t.executions) + 2)]
    for _ in range(2):
        options.append(
            lambda: (
                [
                    {
                        "name": "v1.ExecutionRequested",
                        "args": {
                            "execution_id": draw(st.sampled_from(free_ex)),
                            "cell_id": draw(st.sampled_from(code)),
                            "code": "1",
                        },
                    }
                ],
                0,
            )
        )
    free_s = (
        [f"r{len(t.runtimes)}"] if sum(r.state == "live" for r in t.runtimes.values()) < 2 else []
    )
    if free_s:
        client = draw(st.sampled_from(sorted(RUNTIMES)))
        options.append(
            lambda: (
                [
                    {
                        "name": "v1.RuntimeSessionStarted",
                        "args": {"session_id": draw(st.sampled_from(free_s))},
                    }
                ],
                RUNTIMES[client],
            )
        )
    for rt in t.runtimes.values():
        if rt.state != "live":
            continue
        owner = RUNTIMES.get(rt.client_id, 4)
        options.append(
            lambda rt=rt, owner=owner: (
                [
                    {
                        "name": "v1.RuntimeSessionEnded",
                        "args": {"session_id": rt.session_id, "reason": "r"},
                    }
                ],
                draw(st.sampled_from([owner, 4])),
            )
        )
        first = state.first_pending()
        if rt.holding is None and first is not None:
            options.append(
                lambda rt=rt, owner=owner, first=first: (
                    [
                        {
                            "name": "v1.ExecutionAssigned",
                            "args": {"execution_id": first, "session_id": rt.session_id},
                        }
                    ],
                    owner,
                )
            )
        held = t.executions.get(rt.holding) if rt.holding else None
        if held is not None:
            x = held.id
            if held.state == "assigned":
                options.append(
                    lambda x=x, owner=owner: (
                        [
                            {
                                "name": "v1.ExecutionStarted",
                                "args": {
                                    "execution_id": x,
                                    "execution_count": draw(st.integers(1, 9)),
                                },
                            }
                        ],
                        owner,
                    )
                )
                options.append(
                    lambda x=x: (
                        [{"name": "v1.ExecutionCancelled", "args": {"execution_id": x}}],
                        1,
                    )
                )
            else:
                for _ in range(3):
                    options.append(
                        lambda x=x, owner=owner: (
                            [
                                {
                                    "name": "v1.OutputAppended",
                                    "args": {"execution_id": x, "output": draw(outputs)},
                                }
                                for _ in range(draw(st.integers(1, 3)))
                            ],
                            owner,
                        )
                    )
                options.append(
                    lambda x=x, owner=owner: (
                        [
                            {
                                "name": "v1.DisplayUpdated",
                                "args": {
                                    "display_id": draw(st.sampled_from(["d0", "d1"])),
                                    "data": {"text/plain": draw(texts)},
                                    "execution_id": x,
                                },
                            }
                        ],
                        owner,
                    )
                )
                options.append(
                    lambda x=x, owner=owner: (
                        [
                            {
                                "name": "v1.OutputsCleared",
                                "args": {"execution_id": x, "wait": draw(st.booleans())},
                            }
                        ],
                        owner,
                    )
                )
                options.append(
                    lambda x=x, owner=owner: (
                        [{"name": "v1.InputRequested", "args": {"execution_id": x, "prompt": "?"}}],
                        owner,
                    )
                )
                options.append(
                    lambda x=x, owner=owner: (
                        [
                            {
                                "name": "v1.ExecutionCompleted",
                                "args": {
                                    "execution_id": x,
                                    "status": draw(st.sampled_from(["ok", "error"])),
                                },
                            }
                        ],
                        owner,
                    )
                )
                options.append(
                    lambda x=x: (
                        [
                            {
                                "name": "v1.ExecutionFailed",
                                "args": {"execution_id": x, "reason": "lost"},
                            }
                        ],
                        4,
                    )
                )
    for req in t.inputs.values():
        if req.state == "pending":
            options.append(
                lambda req=req: (
                    [
                        {
                            "name": "v1.InputReplied",
                            "args": {"execution_id": req.execution_id, "value": draw(texts)},
                        }
                    ],
                    1,
                )
            )
    for x in list(state.pending)[:2]:
        options.append(
            lambda x=x: ([{"name": "v1.ExecutionCancelled", "args": {"execution_id": x}}], 0)
        )
    anything = [
        lambda: (
            draw(st.lists(events, min_size=1, max_size=2)),
            draw(st.sampled_from(range(len(WHO)))),
        )
    ]
    kind = draw(st.sampled_from(["cells", "queue", "queue", "queue", "queue", "any"]))
    pool = (
        {"cells": cell_options, "queue": options, "any": anything}[kind] or cell_options or anything
    )
    return draw(st.sampled_from(pool))()


def browser_step(draw, browser):
    """One edit as a JupyterLab tab makes it, on the tab's copy of the document
    (which may be behind the log): the `DocumentUpdated` it pushes."""
    ids = browser.ids()
    options = [
        lambda: browser.insert_cell(
            draw(st.integers(0, len(ids))),
            f"b{draw(st.integers(0, 9))}",
            draw(texts),
            draw(st.sampled_from(["code", "markdown"])),
        )
    ]
    if ids:
        cid = draw(st.sampled_from(ids))
        n = len(str(browser.cells[ids.index(cid)]["source"]))
        options += [
            lambda: browser.type_text(cid, draw(st.integers(0, n)), draw(texts) or "z"),
            lambda: browser.move_cell(cid, draw(st.integers(0, len(ids) - 1))),
            lambda: browser.delete_cell(cid),
            lambda: browser.set_metadata(cid, "k", draw(st.sampled_from([None, 1, "v", [1.5]]))),
            lambda: browser.set_type(cid, draw(st.sampled_from(["code", "markdown", "raw"]))),
        ]
    return draw(st.sampled_from(options))()


def queue_step(draw: Any, state: Any) -> tuple[list[dict[str, Any]], int]:
    """One push of a queue's life, weighted so executions get run: runs and Run
    Alls (batches, with or without stop-on-error), claims, starts, outputs of
    every type, display updates, clears, input asked and answered (or left),
    ends ok, in error or failed, cancels, lost runtimes."""
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
                4,
                lambda x=x, owner=owner: (
                    [ev("OutputAppended", execution_id=x, output=draw(outputs))],
                    owner,
                ),
            )
        )
        options.append(
            (
                1,
                lambda x=x, owner=owner: (
                    [
                        ev(
                            "DisplayUpdated",
                            display_id=draw(st.sampled_from(["d0", "d1"])),
                            data={"text/plain": draw(texts)},
                            execution_id=x,
                        )
                    ],
                    owner,
                ),
            )
        )
        options.append(
            (
                1,
                lambda x=x, owner=owner: (
                    [ev("OutputsCleared", execution_id=x, wait=draw(st.booleans()))],
                    owner,
                ),
            )
        )
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
    for rt in live:
        options.extend(_comm_steps(draw, state, rt, RUNTIMES.get(rt.client_id, 4)))
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


def _comm_steps(draw: Any, state: Any, rt: Any, owner: int) -> list[tuple[int, Any]]:
    """A live runtime's comms: widgets Python opens, updates both ways (some with
    binary parts), a front end opening one, closes from either side, deliveries."""
    t = state.t
    sid = rt.session_id

    def ev(name: str, **args: Any) -> dict[str, Any]:
        return {"name": f"v1.{name}", "args": args}

    free = [c for c in COMMS if c not in t.comms or not t.comms[c].live]
    mine = [c.comm_id for c in t.comms.values() if c.session_id == sid and c.live]
    steps: list[tuple[int, Any]] = []
    if free:
        steps.append(
            (
                2,
                lambda: (
                    [
                        ev(
                            "CommOpened",
                            comm_id=draw(st.sampled_from(free)),
                            session_id=sid,
                            target_name="jupyter.widget",
                            origin="runtime",
                            data=draw(widget_data),
                            buffers=["AAE="],
                        )
                    ],
                    owner,
                ),
            )
        )
        steps.append(
            (
                1,
                lambda: (
                    [
                        ev(
                            "CommOpened",
                            comm_id=draw(st.sampled_from(free)),
                            session_id=sid,
                            target_name="jupyter.widget.control",
                            origin="client",
                        )
                    ],
                    draw(st.sampled_from([0, 1])),
                ),
            )
        )
    for c in mine:
        steps.append(
            (
                2,
                lambda c=c: (
                    [
                        ev(
                            "CommMessage",
                            comm_id=c,
                            origin="client",
                            data={"method": "update", **draw(widget_data)},
                            buffers=draw(st.sampled_from([[], ["AAI="]])),
                        ),
                    ],
                    draw(st.sampled_from([0, 1])),
                ),
            )
        )
        steps.append(
            (
                2,
                lambda c=c: (
                    [
                        ev(
                            "CommMessage",
                            comm_id=c,
                            origin="runtime",
                            data={"method": "echo_update", **draw(widget_data)},
                            buffers=["AAM="],
                        ),
                        ev("CommsDelivered", session_id=sid, seq=t.head),
                    ],
                    owner,
                ),
            )
        )
        steps.append(
            (
                1,
                lambda c=c: (
                    [ev("CommClosed", comm_id=c, origin=draw(origin))],
                    draw(st.sampled_from([owner, 0])),
                ),
            )
        )
    return steps

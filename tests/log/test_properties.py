"""Properties of folding and syncing, over randomly generated logs."""

import copy
import json
import os
import sqlite3

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from anode_ext.log import Identity, Refused, Store, tables
from anode_ext.log.state import Dirty
from anode_ext.log.sync import Replica

from .doccheck import assert_agree
from .gen import WHO, browser_step, events, pushes, queue_step, smart_step, with_id
from .ybrowser import Browser

# A fixed number of examples in CI; a longer run is `ANODE_EXAMPLES=2000 make pytest`.
# The share of examples that reached each event kind: pytest's
# --hypothesis-show-statistics (on in pyproject). A failure prints the blob
# that replays it (@reproduce_failure).
SETTINGS = settings(
    max_examples=int(os.environ.get("ANODE_EXAMPLES", "60")),
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


def fill(store, plan):
    accepted = 0
    for batch, who in plan:
        try:
            store.push([with_id(ev) for ev in batch], WHO[who])
            accepted += 1
        except Refused:
            pass
    return accepted


def all_dirty(state):
    d = Dirty()
    d.notebook = True
    d.cells = set(state.t.cells)
    d.executions = set(state.t.executions)
    d.runtimes = set(state.t.runtimes)
    d.inputs = set(state.t.inputs)
    d.outputs = set(state.t.outputs)
    d.comms = set(state.t.comms)
    return d


def smart_fill(store, data, steps):
    """Random pushes; with a document, two browser tabs edit it too, each pulling
    only now and then (so their edits are often made on a stale copy)."""
    accepted = 0
    ids = iter(range(1000, 10**6))  # Yjs orders concurrent inserts by client id: fixed ones
    tabs = [Browser(store, next(ids)), Browser(store, next(ids))] if store.document else []
    for _ in range(steps):
        tab = data.draw(st.sampled_from(range(len(tabs) + 2)))
        if tab >= len(tabs):
            # Two steps in three from a queue's life (runs, claims, outputs of every
            # type, inputs, ends), so every event kind is drawn in proportion.
            step = smart_step if data.draw(st.integers(0, 2)) == 0 else queue_step
            batch, who = step(data.draw, store.state)
            batch = [with_id(ev) for ev in batch]
        else:
            if data.draw(st.booleans()):
                tabs[tab].pull(store)
            batch, who = [browser_step(data.draw, tabs[tab])], tab
        try:
            store.push(batch, WHO[who])
            accepted += 1
        except Refused:
            if tab < len(tabs):
                tabs[tab] = Browser(store, next(ids))  # a refused tab resyncs
    for tab in tabs:
        tab.pull(store)
        assert tab.doc.get_update() and tab.ids() == [str(c["id"]) for c in store.document.cells]
    return accepted


@SETTINGS
@given(data=st.data(), steps=st.integers(0, 80))
def test_replay_from_zero_equals_incremental_tables(tmp_path_factory, data, steps):
    path = tmp_path_factory.mktemp("p") / "nb.anode"
    with Store.open(path, create=True, document=True) as store:
        if data.draw(st.booleans()):
            store.sync_document(WHO[4])  # sometimes from the start, sometimes late
        smart_fill(store, data, steps)
        store.sync_document(WHO[4])
        for name in sorted({env.name for env in store.events()}):
            event(name)
        assert_agree(store)
        replayed = store.replay()
        assert replayed.t == store.state.t
        # the SQL tables too: write the replayed state into a fresh file and compare every row
        fresh = sqlite3.connect(":memory:")
        for stmt in tables.DDL:
            fresh.execute(stmt)
        tables.write(fresh, replayed, all_dirty(replayed))
        assert tables.dump(fresh) == tables.dump(store._db)
    with Store.open(path, document=True) as reopened:
        assert reopened.state.t == replayed.t
        assert reopened.document.notebook() == reopened.replay_document().notebook()


def _mutations(event):
    args = event["args"]
    key = sorted(args)[0]
    yield {**event, "name": event["name"] + "X"}
    yield {**event, "args": {k: v for k, v in args.items() if k != key}}
    yield {**event, "args": {**args, "surplus": 1}}
    yield {**event, "args": {**args, key: [args[key]]}}
    yield {**event, "args": json.dumps(args)}
    yield {k: v for k, v in event.items() if k != "args"}


@SETTINGS
@given(plan=pushes, victim=events, where=st.integers(0, 3))
def test_malformed_events_are_refused_and_leave_the_log_byte_identical(
    tmp_path_factory, plan, victim, where
):
    path = tmp_path_factory.mktemp("f") / "nb.anode"
    with Store.open(path, create=True) as store:
        fill(store, plan)
        before = (store.events_json(), tables.dump(store._db))
        for bad in _mutations(victim):
            good = [with_id(e) for e in copy.deepcopy(plan[0][0])] if plan else []
            batch = good[:where] + [with_id(bad) if "args" in bad else bad] + good[where:]
            try:
                store.push(batch, WHO[0])
            except Refused as err:
                assert err.index == min(where, len(good))
            else:
                raise AssertionError(f"accepted {bad}")
            assert (store.events_json(), tables.dump(store._db)) == before


@SETTINGS
@given(
    data=st.data(),
    script=st.lists(
        st.tuples(
            st.integers(0, 2),
            st.sampled_from(["add", "add", "push", "pull", "pull_some"]),
            st.integers(0, 50),
        ),
        max_size=60,
    ),
)
def test_replicas_converge_in_any_interleaving(tmp_path_factory, data, script):
    path = tmp_path_factory.mktemp("r") / "nb.anode"
    with Store.open(path, create=True) as store:
        replicas = [Replica(client_id=f"rep{i}") for i in range(3)]
        who = [Identity(f"user{i}", r.client_id) for i, r in enumerate(replicas)]

        def push(i):
            r = replicas[i]
            body = r.outbox()
            if not body:
                return
            try:
                store.push(body, who[i])
            except Refused as err:
                r.refuse([b["id"] for b in body], err.index, err.reason, err.status)

        def pull(i, upto=None):
            r = replicas[i]
            envs = store.events(after=r.head, limit=upto)
            r.receive(envs)

        for i, action, n in script:
            if action == "add":
                for event in smart_step(data.draw, replicas[i].view)[0]:
                    replicas[i].add(event["name"], event["args"])
                _ = replicas[i].view  # optimistic view must always fold
            elif action == "push":
                push(i)
            elif action == "pull":
                pull(i)
            else:
                pull(i, n % 5 + 1)
        for _ in range(200):
            if not any(r.pending for r in replicas):
                break
            for i in range(3):
                push(i)
                pull(i)
        for i, r in enumerate(replicas):
            pull(i)
            assert not r.pending
            assert r.confirmed.t == store.state.t
            assert r.view.t == store.state.t

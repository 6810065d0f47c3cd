import json

import pytest

from anode_ext.log.sync import (
    GapError,
    ProtocolError,
    Replica,
    events_message,
    handle_push,
    parse_message,
)

from .helpers import ALICE, cell, e


def test_push_answers_ok_or_refused(store):
    msg = parse_message(json.dumps({"type": "push", "req": 7, "events": [cell("a")]}))
    assert handle_push(store, msg, ALICE) == {"type": "push_ok", "req": 7, "seqs": [1]}
    again = handle_push(store, msg, ALICE)
    assert again["seqs"] == [1] and store.head == 1
    bad = parse_message(
        json.dumps({"type": "push", "req": "r", "events": [cell("b", position="W"), cell("a")]})
    )
    answer = handle_push(store, bad, ALICE)
    assert answer["type"] == "push_refused" and answer["index"] == 1 and answer["req"] == "r"
    assert "exists already" in answer["reason"]
    assert store.head == 1


@pytest.mark.parametrize(
    "raw",
    [
        '{"type": "hello"}',
        "[]",
        "nope",
        '{"type": "pull", "after": -1}',
        '{"type": "pull", "after": "x"}',
        '{"type": "push"}',
        '{"type": "push", "events": [], "extra": 1}',
    ],
)
def test_bad_messages(raw):
    with pytest.raises(ProtocolError):
        parse_message(raw)


def test_events_message_is_valid_json(store):
    store.push([cell("a"), cell("b", position="W")], ALICE)
    msg = json.loads(events_message(store.events_json(), store.head))
    assert msg["type"] == "events" and [x["seq"] for x in msg["events"]] == [1, 2]
    assert msg["head"] == 2


def test_replica_shows_its_own_events_then_rebases(store):
    r = Replica(client_id="client-a")
    r.add(
        "v1.CellCreated", {"cell_id": "mine", "cell_type": "code", "source": "1", "position": "V"}
    )
    assert "mine" in r.view.t.cells and r.head == 0
    store.push([cell("theirs", position="F")], ALICE)  # someone else got in first
    body = r.outbox()
    assert r.outbox() == []
    seqs = store.push(body, ALICE)
    r.receive(store.events_json())
    assert seqs == [2] and r.head == 2 and not r.pending
    assert r.view.t == store.state.t


def test_replica_drops_and_reports_refused_events(store):
    reported = []
    r = Replica(on_refused=reported.append)
    good = r.add(
        "v1.CellCreated", {"cell_id": "a", "cell_type": "code", "source": "", "position": "V"}
    )
    bad = r.add("v1.CellDeleted", {"cell_id": "nope"})
    body = r.outbox()
    with pytest.raises(Exception) as info:
        store.push(body, ALICE)
    r.refuse([b["id"] for b in body], info.value.index, info.value.reason, info.value.status)
    assert [x.id for x in reported] == [bad] and reported[0].status == 409
    assert [p.id for p in r.pending] == [good]
    store.push(r.outbox(), ALICE)
    r.receive(store.events())
    assert not r.pending and "a" in r.confirmed.t.cells


def test_replica_resumes_and_detects_gaps(store):
    store.push([cell("a"), cell("b", position="W"), e("CellDeleted", cell_id="a")], ALICE)
    r = Replica()
    r.receive(store.events(limit=1))
    r.receive(store.events(limit=2))  # overlap: nothing doubles
    assert r.head == 2
    with pytest.raises(GapError):
        Replica().receive(store.events(after=1))
    r.receive(store.events(after=r.head))
    assert r.confirmed.t == store.state.t

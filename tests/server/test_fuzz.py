"""Fuzzed sync messages: each gets a clear answer, none changes the log, the socket stays usable."""

from __future__ import annotations

import json
import random
import uuid
from typing import Any

from .test_rest import body, create, event
from .test_ws import recv


def _valid_cell() -> dict[str, Any]:
    return event("CellCreated", cell_id="c", cell_type="code", source="x", position="V")


def _broken_events(rng: random.Random) -> Any:
    """A push's events that can never be valid, in many shapes."""
    e = _valid_cell()
    kind = rng.randrange(12)
    if kind == 0:
        e["name"] = rng.choice(["v1.Nope", "CellCreated", "", "v2.CellCreated", 7])
    elif kind == 1:
        del e[rng.choice(["id", "name", "args"])]
    elif kind == 2:
        e["args"][rng.choice(list(e["args"]))] = rng.choice([None, 5, [], {}, 1.5, True])
    elif kind == 3:
        e["args"]["unexpected"] = "field"
    elif kind == 4:
        del e["args"][rng.choice(list(e["args"]))]
    elif kind == 5:
        e["args"]["position"] = rng.choice(["", "0", "V0", "!", "é"])
    elif kind == 6:
        e["id"] = rng.choice([None, 5, "", "x" * 10_000])
    elif kind == 7:
        return rng.choice([None, {}, "events", 5, [None], [[]], ["str"]])
    elif kind == 8:  # a valid event behind an invalid one: the batch is refused whole
        return [_valid_cell(), {**_valid_cell(), "name": "v1.Nope"}]
    elif kind == 9:
        e = event("ExecutionAssigned", execution_id="none", session_id="none")
    elif kind == 10:
        e = event("InputReplied", execution_id="none", value="v")
    else:
        e["args"]["source"] = "x" * (2 << 20)  # past the size limit
    return [e]


def _garbage(rng: random.Random) -> str | bytes:
    kind = rng.randrange(6)
    if kind == 0:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64)))
    if kind == 1:
        return json.dumps(rng.choice([None, 1, "push", [], {"type": "nope"}, {"type": 5}]))
    if kind == 2:
        return json.dumps({"type": "pull", "after": rng.choice([-1, "x", None, 1.5, []])})
    if kind == 3:
        return json.dumps({"type": "push", "req": 1})  # no events
    if kind == 4:
        return "{" * rng.randrange(1, 2000)
    return json.dumps({"type": "pull", "after": 0, "extra": True})


async def test_fuzzed_messages_are_refused_and_change_nothing(
    jp_fetch: Any, jp_ws_fetch: Any
) -> None:
    nb = await create(jp_fetch)
    head = body(await jp_fetch("anode", "api", "notebooks", nb))["head"]
    ws = await jp_ws_fetch("anode", "api", "notebooks", nb, "sync")
    rng = random.Random(20261127)
    for i in range(300):
        if i % 2:
            msg: str | bytes = json.dumps({"type": "push", "req": i, "events": _broken_events(rng)})
        else:
            msg = _garbage(rng)
        await ws.write_message(msg, binary=isinstance(msg, bytes))
        answer = await recv(ws)
        assert answer["type"] in ("error", "push_refused"), (msg[:200], answer)
        assert answer.get("reason"), answer  # a reason a person can act on
        if answer["type"] == "push_refused":
            assert answer["req"] == i and isinstance(answer["index"], int)
    assert body(await jp_fetch("anode", "api", "notebooks", nb))["head"] == head
    # The connection still works.
    good = _valid_cell()
    await ws.write_message(json.dumps({"type": "push", "req": "ok", "events": [good]}))
    while (answer := await recv(ws))["type"] != "push_ok":
        pass
    assert answer["seqs"] == [head + 1]
    ws.close()


async def test_unique_ids_do_not_make_a_refused_batch_pass(jp_fetch: Any, jp_ws_fetch: Any) -> None:
    nb = await create(jp_fetch)
    ws = await jp_ws_fetch("anode", "api", "notebooks", nb, "sync")
    bad = {**_valid_cell(), "id": uuid.uuid4().hex}
    bad["args"]["cell_type"] = "nope"
    for _ in range(3):  # a retry of a refused batch is refused again, never half-applied
        await ws.write_message(json.dumps({"type": "push", "req": 1, "events": [bad]}))
        assert (await recv(ws))["type"] == "push_refused"
    assert body(await jp_fetch("anode", "api", "notebooks", nb))["head"] == 1
    ws.close()

import json

import pytest

from anode_ext.log import CATALOGUE, Limits, Refused, Store, json_schema

from .helpers import ALICE, cell, e, log_bytes


def test_schema_names_every_event_and_is_json():
    schema = json_schema()
    assert set(schema["events"]) == set(CATALOGUE)
    for ref in schema["events"].values():
        name = ref["$ref"].split("/")[-1]
        assert name in schema["$defs"]
    json.dumps(schema)
    assert schema["$defs"]["CellCreated"]["required"] == [
        "cell_id",
        "cell_type",
        "source",
        "position",
    ]


@pytest.mark.parametrize(
    ("item", "status", "words"),
    [
        ({"id": "x", "name": "v1.Nope", "args": {}}, 400, "unknown event name"),
        ({"id": "x", "name": "CellCreated", "args": {}}, 400, "unknown event name"),
        (e("CellDeleted"), 400, "missing required field `cell_id`"),
        (e("CellDeleted", cell_id=3), 400, "Expected `str`, got `int`"),
        (e("CellDeleted", cell_id="a", extra=1), 400, "unknown field `extra`"),
        (
            {"id": "x", "name": "v1.CellDeleted", "args": {"cell_id": "a"}, "seq": 4},
            400,
            "the server sets them",
        ),
        (
            {"id": "", "name": "v1.CellDeleted", "args": {"cell_id": "a"}},
            400,
            "non-empty string 'id'",
        ),
        ({"name": "v1.CellDeleted", "args": {"cell_id": "a"}}, 400, "'id'"),
        (
            e("CellCreated", cell_id="a", cell_type="python", source="", position="V"),
            400,
            "cell_type",
        ),
        (e("ExecutionCompleted", execution_id="a", status="fine"), 400, "status"),
        (
            e(
                "OutputAppended",
                execution_id="a",
                output={"output_type": "stream", "name": "stdin", "text": ""},
            ),
            400,
            "name",
        ),
        (e("OutputAppended", execution_id="a", output={"output_type": "bogus"}), 400, "bogus"),
        ("not an object", 400, "each event is an object"),
        (e("CellSourceChanged", cell_id="a", source="x" * 3000), 413, "limit is 2000"),
    ],
)
def test_refusals_name_the_index_and_append_nothing(tmp_path, item, status, words):
    store = Store.open(tmp_path / "a.anode", create=True, limits=Limits(max_event_bytes=2000))
    store.push([cell("a")], ALICE)
    before = log_bytes(store)
    with pytest.raises(Refused) as info:
        store.push([cell("b", position="W"), item], ALICE)
    assert info.value.index == 1
    assert info.value.status == status
    assert words in info.value.reason
    assert log_bytes(store) == before
    assert "b" not in store.state.t.cells


def test_wire_json_and_parsed_paths_agree(store):
    items = [cell("a", "1"), e("CellMoved", cell_id="a", position="W")]
    raw = json.dumps(items).encode()
    store.push_json(raw, ALICE)
    assert [env.name for env in store.events()] == ["v1.CellCreated", "v1.CellMoved"]
    with pytest.raises(Refused, match="not valid JSON"):
        store.push_json(b"[{", ALICE)
    with pytest.raises(Refused, match="JSON array"):
        store.push_json(b'{"id": 1}', ALICE)
    bad = json.dumps(
        [
            cell("b", position="X"),
            {"id": "q", "name": "v1.CellMoved", "args": {"cell_id": 1, "position": "Y"}},
        ]
    )
    with pytest.raises(Refused) as info:
        store.push_json(bad.encode(), ALICE)
    assert info.value.index == 1
    assert store.head == 2


def test_batch_limits(tmp_path):
    store = Store.open(
        tmp_path / "a.anode", create=True, limits=Limits(max_batch_events=3, max_batch_bytes=500)
    )
    with pytest.raises(Refused, match="at most 3") as info:
        store.push([cell(str(i), position="V") for i in range(4)], ALICE)
    assert info.value.status == 413
    with pytest.raises(Refused, match="500 bytes"):
        store.push([cell("a", "x" * 300), cell("b", "y" * 300, position="W")], ALICE)
    with pytest.raises(Refused, match="empty batch"):
        store.push([], ALICE)
    assert store.head == 0

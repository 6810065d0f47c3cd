import sqlite3
import subprocess
import sys

import pytest

from anode_ext.log import Identity, Refused, Store, StoreError
from anode_ext.log import tables as _tables

from .helpers import ALICE, BOB, cell, e, log_bytes


def test_seq_is_gap_free_and_envelope_is_stamped_by_the_store(store):
    assert store.push([cell("a"), cell("b", position="W")], ALICE, now=1000) == [1, 2]
    assert store.push([e("CellDeleted", cell_id="a")], BOB, now=900) == [3]
    envs = store.events()
    assert [x.seq for x in envs] == [1, 2, 3]
    assert [x.user for x in envs] == ["alice", "alice", "bob"]
    assert envs[2].client_id == "client-b"
    assert envs[2].at == 1000  # never goes back in time
    assert store.events(after=2)[0].seq == 3
    assert [x.seq for x in store.events(after=0, limit=2)] == [1, 2]


def test_repeated_ids_return_the_original_seqs(store):
    batch = [cell("a"), cell("b", position="W")]
    assert store.push(batch, ALICE) == [1, 2]
    assert store.push(batch, ALICE) == [1, 2]
    more = [batch[1], e("CellDeleted", cell_id="b")]
    assert store.push(more, ALICE) == [2, 3]
    assert store.head == 3
    reused = {"id": batch[0]["id"], "name": "v1.CellDeleted", "args": {"cell_id": "a"}}
    with pytest.raises(Refused, match="was used before") as info:
        store.push([reused], ALICE)
    assert info.value.status == 409
    twice = e("CellDeleted", cell_id="a")
    with pytest.raises(Refused, match="twice"):
        store.push([twice, twice], ALICE)
    assert store.head == 3


def test_user_and_client_come_from_the_caller_never_the_event(store):
    with pytest.raises(Refused, match="server sets them"):
        store.push([{**cell("a"), "user": "mallory"}], ALICE)
    with pytest.raises(Refused, match="unknown field `user`"):
        store.push([e("CellDeleted", cell_id="a", user="mallory")], ALICE)


def test_rights_are_checked(store):
    reader = Identity("rita", "r", frozenset({"read"}))
    with pytest.raises(Refused, match="needs the 'write' right") as info:
        store.push([cell("a")], reader)
    assert info.value.status == 403
    writer = Identity("wes", "w", frozenset({"read", "write"}))
    store.push([cell("a")], writer)
    with pytest.raises(Refused, match="'execute' right"):
        store.push([e("ExecutionRequested", execution_id="x", cell_id="a", code="1")], writer)


def test_reopen_keeps_state_and_log(tmp_path):
    path = tmp_path / "nb.anode"
    with Store.open(path, create=True) as s:
        s.push([cell("a", "print(1)"), e("NotebookMetadataSet", key="k", value={"v": [1]})], ALICE)
        state = s.state.encode()
    with Store.open(path) as s:
        assert s.head == 2
        assert s.state.encode() == state
        assert s.replay().encode() == state


def test_bad_files_are_refused_clearly(tmp_path):
    with pytest.raises(StoreError, match="no such store"):
        Store.open(tmp_path / "missing.anode")
    junk = tmp_path / "junk.anode"
    junk.write_bytes(b"this is not sqlite at all, not even close" * 100)
    with pytest.raises(StoreError, match="not an Anode store or corrupt"):
        Store.open(junk)
    foreign = tmp_path / "foreign.anode"
    db = sqlite3.connect(foreign)
    db.execute("CREATE TABLE t (x)")
    db.commit()
    db.close()
    with pytest.raises(StoreError, match="not an Anode store"):
        Store.open(foreign)
    newer = tmp_path / "newer.anode"
    Store.open(newer, create=True).close()
    db = sqlite3.connect(newer)
    db.execute(f"PRAGMA user_version={_tables.SCHEMA_VERSION + 1}")
    db.commit()
    db.close()
    with pytest.raises(StoreError, match="newer Anode"):
        Store.open(newer)
    with pytest.raises(StoreError, match="directory"):
        Store.open(tmp_path, create=True)


def test_truncated_store_is_refused(tmp_path):
    path = tmp_path / "nb.anode"
    with Store.open(path, create=True) as s:
        s.push(
            [
                cell(f"c{i}", "x" * 2000, position="V")
                if i == 0
                else cell(f"c{i}", "x" * 2000, position="V" + "V" * i)
                for i in range(50)
            ],
            ALICE,
        )
        s.checkpoint_wal()
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3] + b"\x00" * 100)
    with pytest.raises(StoreError):
        s2 = Store.open(path)
        s2.events()


def test_readonly_store_refuses_writes(tmp_path):
    path = tmp_path / "nb.anode"
    Store.open(path, create=True).close()
    with Store.open(path, readonly=True) as s, pytest.raises(StoreError, match="read-only"):
        s.push([cell("a")], ALICE)


def test_a_second_process_appending_is_seen(tmp_path):
    path = tmp_path / "nb.anode"
    s = Store.open(path, create=True)
    s.push([cell("a")], ALICE)
    code = (
        "from anode_ext.log import Store, Identity;"
        f"s = Store.open({str(path)!r});"
        "s.push([{'id': 'other', 'name': 'v1.CellCreated', 'args': {'cell_id': 'b', 'cell_type': 'code',"
        " 'source': '', 'position': 'W'}}], Identity('bob', 'b'))"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    assert s.push([e("CellDeleted", cell_id="b")], ALICE) == [3]
    assert set(s.state.t.cells) == {"a"}
    assert s.replay().encode() == s.state.encode()


def test_state_refusal_mid_batch_undoes_every_fold(store):
    store.push([cell("a", "one")], ALICE)
    before = (log_bytes(store), store.state.encode())
    with pytest.raises(Refused) as info:
        store.push(
            [
                e("CellSourceChanged", cell_id="a", source="two"),
                e("CellMetadataSet", cell_id="a", key="k", value=1),
                cell("b", position="W"),
                e("CellDeleted", cell_id="zzz"),
            ],
            ALICE,
        )
    assert info.value.index == 3
    assert info.value.status == 409
    assert (log_bytes(store), store.state.encode()) == before
    assert store.state.t.cells["a"].source == "one"


def test_recent_events_read_from_memory_equal_the_file(tmp_path, monkeypatch):
    """Readers at the head get the last commits from memory: the same bytes the
    file holds, a refused push leaves nothing there, and another process's
    append is read from the file."""
    from anode_ext.log import store as store_module

    monkeypatch.setattr(store_module, "RECENT_ROWS", 5)
    path = tmp_path / "nb.anode"
    s = Store.open(path, create=True)

    def from_file(after):
        with Store.open(path, readonly=True) as reader:
            return reader.events_json(after)

    for i in range(8):
        s.push([cell(f"c{i}", position=f"V{i + 1}")], ALICE)
    with pytest.raises(Refused):
        s.push([e("CellDeleted", cell_id="nope")], ALICE)
    assert len(s._recent) == 5
    for after in range(10):
        for limit in (None, 1, 3):
            want = from_file(after)
            assert s.events_json(after, limit) == (want if limit is None else want[:limit])
    other = Store.open(path)
    other.push([e("CellDeleted", cell_id="c0")], BOB)
    s.refresh()
    assert s.events_json(6) == from_file(6)
    assert [env.name for env in s.events(8)] == ["v1.CellDeleted"]


def test_a_store_of_schema_2_opens_read_only_and_migrates(tmp_path):
    """Schema 3 added `kept` (fields of a newer nbformat minor) to notebook and cells."""
    path = tmp_path / "old.anode"
    with Store.open(path, create=True) as s:
        s.push([e("NotebookInitialized", title="t"), cell("a", "1")], ALICE)
        state = s.state.encode()
    db = sqlite3.connect(path)
    db.execute("ALTER TABLE notebook DROP COLUMN kept")
    db.execute("ALTER TABLE cells DROP COLUMN kept")
    db.execute("PRAGMA user_version=2")
    db.commit()
    db.close()
    with Store.open(path, readonly=True) as s:
        assert s.state.encode() == state
    with Store.open(path) as s:
        assert s.state.encode() == state == s.replay().encode()
        s.push([e("CellSourceChanged", cell_id="a", source="2")], ALICE)
    with Store.open(path, readonly=True) as s:
        assert s.state.t.cells["a"].kept == {} and s.state.t.notebook.kept == {}

from anode_ext.log import Store
from anode_ext.log import store as store_mod

from .helpers import ALICE, cell, e


def test_state_at_every_seq_equals_a_replay_up_to_it(tmp_path, monkeypatch):
    monkeypatch.setattr(store_mod, "CHECKPOINT_EVERY", 5)
    s = Store.open(tmp_path / "nb.anode", create=True)
    s.push([cell("c", "v0")], ALICE)
    for i in range(1, 30):
        s.push([e("CellSourceChanged", cell_id="c", source=f"v{i}")], ALICE)
    for seq in (1, 7, 13, 22, 30):
        assert s.state_at(seq).t.cells["c"].source == f"v{seq - 1}"
        assert s.state_at(seq).t.head == seq
    (count,) = s._db.execute("SELECT count(*) FROM checkpoints").fetchone()
    assert count >= 4
    again = Store.open(tmp_path / "nb.anode")
    assert again.state_at(13).t.cells["c"].source == "v12"
    assert s.state_at(0).t.cells == {}

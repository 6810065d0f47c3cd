"""The PostgreSQL store against the SQLite store: the same pushes give the same
log (byte for byte), the same refusals and the same state; appends from many
connections at once stay gap-free and idempotent."""

from __future__ import annotations

import itertools
import json
import multiprocessing
import uuid
from unittest import mock

from hypothesis import given
from hypothesis import strategies as st

from anode_ext.log import Identity, Refused, Store
from anode_ext.log import catalogue as ev

from .doccheck import assert_agree
from .gen import WHO
from .pgsync import SyncPg
from .test_properties import SETTINGS, smart_fill


class Both:
    """Each push goes to a SQLite store and a PostgreSQL store with the same clock
    and the same generated ids; both must answer alike. Reads come from SQLite."""

    def __init__(self, sqlite: Store, pg: SyncPg) -> None:
        self.sqlite, self.pg = sqlite, pg
        self.clock = itertools.count(1_700_000_000_000, 7)

    @property
    def state(self):  # type: ignore[no-untyped-def]
        return self.sqlite.state

    @property
    def document(self):  # type: ignore[no-untyped-def]
        return self.sqlite.document

    def events(self, after=0, limit=None):  # type: ignore[no-untyped-def]
        return self.sqlite.events(after, limit)

    def _both(self, call):  # type: ignore[no-untyped-def]
        seed, now = uuid.uuid4().int, next(self.clock)
        outcomes = []
        for store in (self.sqlite, self.pg):
            ids = (uuid.UUID(int=(seed + k) % 2**128, version=4) for k in itertools.count())
            with (
                mock.patch("anode_ext.log.core.uuid.uuid4", ids.__next__),
                mock.patch("anode_ext.log.core.now_ms", lambda: now),
            ):
                try:
                    outcomes.append(("ok", call(store)))
                except Refused as err:
                    outcomes.append(("refused", (err.index, err.reason, err.status)))
        assert outcomes[0] == outcomes[1]
        if outcomes[0][0] == "refused":
            raise Refused(*outcomes[0][1])
        return outcomes[0][1]

    def push(self, items, who):  # type: ignore[no-untyped-def]
        return self._both(lambda s: s.push(items, who))

    def sync_document(self, who):  # type: ignore[no-untyped-def]
        return self._both(lambda s: s.sync_document(who))


@SETTINGS
@given(data=st.data(), steps=st.integers(0, 60))
def test_postgres_and_sqlite_give_the_same_log_and_state(
    tmp_path_factory, postgres_url, data, steps
):
    path = tmp_path_factory.mktemp("pg") / "nb.anode"
    with (
        Store.open(path, create=True, document=True) as sqlite,
        SyncPg(postgres_url, document=True) as pg,
    ):
        both = Both(sqlite, pg)
        if data.draw(st.booleans()):
            both.sync_document(WHO[4])
        smart_fill(both, data, steps)
        both.sync_document(WHO[4])
        assert pg.events_json() == sqlite.events_json()
        assert pg.state.t == sqlite.state.t
        assert pg.replay().t == sqlite.state.t
        assert pg.document.notebook() == sqlite.document.notebook()
        assert_agree(pg)
        # another replica opening the log (checkpoint + tail) folds the same
        with SyncPg(postgres_url, pg.id, document=True) as other:
            assert other.state.t == sqlite.state.t
            assert other.document.notebook() == sqlite.document.notebook()


def test_a_replica_catches_up_and_appends_after_the_other(postgres_url):
    who = Identity("ana", "c1")
    with SyncPg(postgres_url) as a, SyncPg(postgres_url, None) as _unused:
        with SyncPg(postgres_url, a.id) as b:
            a.append([("i", ev.NotebookInitialized(title="t"))], who)
            assert b.head == 0  # b has not looked yet
            # b's append locks the head row, folds a's event first, then its own
            cell = ev.CellCreated(cell_id="c", cell_type="code", source="", position="V")
            assert b.append([("c", cell)], who) == [2]
            assert a.refresh() and a.head == 2
            assert a.events_json() == b.events_json()
            # a retry through the other replica returns the first seq
            assert a.append([("c", cell)], who) == [2]
            assert a.head == 2


def test_a_refused_push_appends_nothing(postgres_url):
    who = Identity("ana", "c1")
    with SyncPg(postgres_url) as pg:
        pg.append([("i", ev.NotebookInitialized(title="t"))], who)
        before = (pg.events_json(), pg.state.t)
        bad = [
            {
                "id": "x",
                "name": "v1.CellCreated",
                "args": {"cell_id": "a", "cell_type": "code", "source": "", "position": "V"},
            },
            {"id": "y", "name": "v1.CellDeleted", "args": {"cell_id": "nope"}},
        ]
        try:
            pg.push(bad, who)
        except Refused as err:
            assert err.index == 1
        else:
            raise AssertionError("accepted a delete of a missing cell")
        assert (pg.events_json(), pg.state.t) == before
        with SyncPg(postgres_url, pg.id) as other:
            assert other.events_json() == before[0]


def _pusher(url: str, notebook_id: str, worker: int, out: multiprocessing.Queue) -> None:
    """8 connections, 125 pushes each, each push sent twice; the acks it got."""
    import asyncio

    from anode_ext.log.postgres import PgStore

    async def connection(k: int) -> list[tuple[str, int]]:
        store = await PgStore.open(url, notebook_id)
        who = Identity(f"w{worker}", f"w{worker}-{k}")
        acks = []
        try:
            for n in range(125):
                event_id = f"{worker}-{k}-{n}"
                meta = ev.NotebookMetadataSet(key=f"k{worker}{k}", value=n)
                for _ in range(2):
                    (seq,) = await store.append([(event_id, meta)], who)
                    acks.append((event_id, seq))
        finally:
            await store.close()
        return acks

    async def main() -> list[tuple[str, int]]:
        return [a for r in await asyncio.gather(*(connection(k) for k in range(8))) for a in r]

    out.put(asyncio.run(main()))


def test_two_processes_of_eight_connections_append_gap_free_and_idempotent(postgres_url):
    with SyncPg(postgres_url) as pg:
        pg.append([("i", ev.NotebookInitialized(title="t"))], Identity("a", "a"))
        ctx = multiprocessing.get_context("spawn")
        out = ctx.Queue()
        procs = [ctx.Process(target=_pusher, args=(postgres_url, pg.id, w, out)) for w in (0, 1)]
        for p in procs:
            p.start()
        acks = [a for _ in procs for a in out.get(timeout=300)]
        for p in procs:
            p.join(60)
            assert p.exitcode == 0
        pg.refresh()
        stored = [json.loads(e) for e in pg.events_json()]
        n = 1 + 2 * 8 * 125
        assert [e["seq"] for e in stored] == list(range(1, n + 1))  # gap-free, in order
        seq_of = {e["id"]: e["seq"] for e in stored}
        assert len(seq_of) == n  # ids unique
        assert len(acks) == 2 * (n - 1)
        for event_id, seq in acks:  # both sends of a push were acked with the stored seq
            assert seq_of[event_id] == seq


def test_a_replica_opened_before_the_document_existed_takes_the_others(postgres_url):
    """The document is made once: a second replica loads it (its Yjs items),
    never projects one of its own, so a tab's keystroke applies on both."""
    from .ybrowser import Browser

    who = Identity("ana", "c1")
    with SyncPg(postgres_url, document=True) as a:
        cell = ev.CellCreated(cell_id="c", cell_type="code", source="x = 1", position="V")
        a.append([("i", ev.NotebookInitialized(title="t")), ("c", cell)], who)
        with SyncPg(postgres_url, a.id, document=True) as b:
            assert a.document is None and b.document is None  # nobody asked yet
            a.sync_document(who)
            b.sync_document(who)  # loads a's document: appends nothing
            assert b.head == a.head
            tab = Browser(a)
            b.push([tab.type_text("c", 5, "23")], who)  # a tab of a, through b
            a.refresh()
            assert a.state.t.cells["c"].source == b.state.t.cells["c"].source == "x = 123"
            assert a.document.notebook() == b.document.notebook()
            assert [str(c["source"]) for c in b.document.cells] == ["x = 123"]

"""What every store does to a push before it writes anything: the pure core.

`plan` checks a batch against the queue's rules, folds it into the state,
derives typed events from a browser's document updates and projects the
tables into the document, and returns the rows to write. It reads no
database and writes none, so the SQLite store and the PostgreSQL store give
the same state and the same event JSON for the same log.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from . import catalogue as ev
from . import rules
from .catalogue import Event
from .document import NotebookDoc, decode_update, encode_update
from .envelope import ARG_DECODERS, Envelope
from .errors import Refused
from .materialize import Batch, fold
from .rules import Identity
from .state import Dirty, State

# A row of the events table: (seq, id, name, args JSON, client_id, user, at).
Row = tuple[int, str, str, str, str, str, int]
# One pushed event: its id, the typed event, its args as the client sent them.
Item = tuple[str, Event, bytes]

DOC_EVENTS = (ev.DocumentUpdated.name, ev.CellSourceEdited.name)
ENC = msgspec.json.Encoder()


class _Update(msgspec.Struct):
    """The `update` of a document event's args (DocumentUpdated or CellSourceEdited)."""

    update: str


UPDATE = msgspec.json.Decoder(_Update)


@dataclass
class Plan:
    """A push, checked and folded (undoable until the store commits it)."""

    batch: Batch
    seqs: list[int] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)
    doc_events: int = 0  # document events among the rows

    @property
    def head(self) -> int:
        return self.rows[-1][0] if self.rows else self.batch.t.head

    def commit(self) -> Dirty:
        return self.batch.commit()

    def rollback(self) -> None:
        self.batch.rollback()

    def set_aside(self) -> Callable[[], None]:
        return self.batch.set_aside()


def now_ms() -> int:
    """The server's time for `at` (when the caller gives none)."""
    return int(time.time() * 1000)


def unique_ids(batch: list[Item]) -> None:
    """Refuse a batch that names one id twice (the second could never be stored)."""
    first: dict[str, int] = {}
    for index, (event_id, _, _) in enumerate(batch):
        if event_id in first:
            raise Refused(index, f"id {event_id!r} appears twice in the batch")
        first[event_id] = index


def plan(
    state: State,
    doc: NotebookDoc | None,
    batch: list[Item],
    who: Identity,
    now: int | None,
    known: dict[str, int],
    *,
    full: bool = False,
    touched: Callable[[], None] = lambda: None,
) -> Plan:
    """Check and fold `batch` (its `known` ids were stored before: their seqs);
    with `full`, project the whole tables into the document. Refused: nothing
    kept in the state; `touched` was called if the document may have changed."""
    b = Batch(state)
    out = Plan(b)
    at = max(now if now is not None else now_ms(), state.t.last_at)
    user, client_id = who.user, who.client_id
    unprojected = False  # typed events since the document last said what the tables say

    def add(event_id: str, event: Event, args: bytes, index: int) -> None:
        seq = out.head + 1
        env = Envelope(seq, event_id, event.name, event, client_id, user, at)
        try:
            fold(b, env)
        except ValueError as err:
            raise Refused(index, f"{event.name}: {err}") from None
        out.rows.append((seq, event_id, event.name, args.decode(), client_id, user, at))

    def project(index: int, everything: bool = False) -> bool:
        """Write the tables' changes so far into the document, as one event."""
        assert doc is not None
        touched()
        update = doc.project(state, None if everything else b.dirty)
        if not update:
            return False
        projected = ev.DocumentUpdated(update=encode_update(update))
        add(uuid.uuid4().hex, projected, ENC.encode(projected), index)
        return True

    try:
        for index, (event_id, event, args) in enumerate(batch):
            if event_id in known:
                out.seqs.append(known[event_id])
                continue
            rules.check(state, event, who, index)
            if not isinstance(event, ev.DocumentUpdated):
                add(event_id, event, args, index)
                out.seqs.append(out.head)
                unprojected = True
                continue
            if doc is None:
                raise Refused(index, f"{event.name}: this log keeps no document", 409)
            if unprojected:
                # Earlier events of this push first: the update is read against
                # a document that says what the tables say.
                out.doc_events += project(index)
                unprojected = False
            touched()
            # Outputs from a client: the file on disk (admin), or JupyterLab
            # running a notebook on a kernel of its own (not Anode's runtimes).
            outputs = rules.ADMIN in who.rights or not state.on_anode()
            derived = _derive(doc, event, state, index, outputs)
            out.doc_events += 1
            if len(derived) == 1 and isinstance(derived[0], ev.CellSourceEdited):
                # A keystroke: one event, carrying the client's update and its delta.
                edit = ev.CellSourceEdited(
                    cell_id=derived[0].cell_id, update=event.update, delta=derived[0].delta
                )
                rules.check(state, edit, who, index, derived=True)
                add(event_id, edit, ENC.encode(edit), index)
                out.seqs.append(out.head)
                continue
            add(event_id, event, args, index)
            out.seqs.append(out.head)
            for k, typed in enumerate(derived):
                rules.check(state, typed, who, index, derived=True)
                add(f"{event_id}/{k}", typed, ENC.encode(typed), index)
        # A push of client updates only: the document says it all already,
        # but for what the update left that the log does not keep.
        again = unprojected or full or (doc is not None and doc.needs_projection)
        if doc is not None and again and project(len(batch), full):
            out.doc_events += 1
            if full:
                out.seqs.append(out.head)
    except BaseException:
        b.rollback()
        raise
    return out


def same_event(name: str, args: str, event: Event, raw: bytes) -> bool:
    """Whether a stored event is the one pushed again (a keystroke is stored as
    the `CellSourceEdited` its `DocumentUpdated` became)."""
    if name == ev.CellSourceEdited.name and isinstance(event, ev.DocumentUpdated):
        return bool(UPDATE.decode(args).update == event.update)
    return bool(name == event.name and msgspec.json.decode(args) == msgspec.json.decode(raw))


def check_known(batch: list[Item], stored: list[tuple[str, int, str, str]]) -> dict[str, int]:
    """The seqs of events pushed before (a retry), from their stored
    `(id, seq, name, args)`; the same id with other content is refused."""
    index_of = {b[0]: i for i, b in enumerate(batch)}
    known: dict[str, int] = {}
    for event_id, seq, name, args in stored:
        known[event_id] = seq
        index = index_of[event_id]
        _, event, raw = batch[index]
        if not same_event(name, args, event, raw):
            raise Refused(
                index, f"id {event_id!r} was used before (seq {seq}) for another event", 409
            )
    return known


def _derive(
    doc: NotebookDoc, event: ev.DocumentUpdated, state: State, index: int, outputs: bool
) -> list[Event]:
    """A client's update applied to the document: the typed events it means, or Refused."""
    try:
        return doc.derive(decode_update(event.update), state, outputs=outputs)
    except PermissionError as err:
        raise Refused(index, f"{event.name}: {err}", 403) from None
    except (ValueError, msgspec.ValidationError) as err:
        raise Refused(index, f"{event.name}: {err}") from None


def apply_document_rows(doc: NotebookDoc, rows: list[tuple[str, str]]) -> int:
    """Apply the updates of `(name, args)` rows that are document events; how many."""
    count = 0
    for name, args in rows:
        if name in DOC_EVENTS:
            doc.apply(decode_update(UPDATE.decode(args).update))
            count += 1
    return count


def decode_rows(rows: list[Row]) -> list[Envelope]:
    """Stored rows as envelopes with typed args."""
    return [
        Envelope(seq, i, name, ARG_DECODERS[name].decode(args), client_id, user, at)
        for seq, i, name, args, client_id, user, at in rows
    ]


def envelope_json(row: tuple[Any, ...]) -> bytes:
    """A stored row as the wire's envelope JSON (args spliced in as stored)."""
    seq, event_id, name, args, client_id, user, at = row
    return b"".join(
        (
            b'{"seq":',
            str(seq).encode(),
            b',"id":',
            ENC.encode(event_id),
            b',"name":',
            ENC.encode(name),
            b',"args":',
            args.encode(),
            b',"client_id":',
            ENC.encode(client_id),
            b',"user":',
            ENC.encode(user),
            b',"at":',
            str(at).encode(),
            b"}",
        )
    )

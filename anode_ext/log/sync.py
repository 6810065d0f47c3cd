"""The sync protocol without its transport.

Server side: a message from an authenticated connection becomes an answer
(`push_ok` / `push_refused`) or a page of events; the websocket and HTTP
handlers only carry bytes. Client side: a `Replica` keeps the confirmed state
the server ordered plus its own unconfirmed events shown on top (a rebase).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from . import rules
from .catalogue import Event
from .envelope import Envelope, decode_envelope, envelope_from_json
from .errors import Refused
from .materialize import Batch, fold
from .rules import Identity
from .state import State
from .store import Store
from .validate import Limits, convert_batch

_ENC = msgspec.json.Encoder()


class ProtocolError(Exception):
    """A message that is not part of the protocol; the connection answers with an error."""


class _Push(msgspec.Struct, forbid_unknown_fields=True):
    type: str
    events: msgspec.Raw
    req: int | str | None = None


class _Pull(msgspec.Struct, forbid_unknown_fields=True):
    type: str
    after: int = 0


class _Kind(msgspec.Struct):
    type: str


_KIND = msgspec.json.Decoder(_Kind)
_PUSH = msgspec.json.Decoder(_Push)
_PULL = msgspec.json.Decoder(_Pull)


def parse_message(raw: bytes | str) -> _Push | _Pull:
    """Decode a client message; ProtocolError with a reason otherwise."""
    try:
        kind = _KIND.decode(raw).type
        if kind == "push":
            return _PUSH.decode(raw)
        if kind == "pull":
            pull = _PULL.decode(raw)
            if pull.after < 0:
                raise ProtocolError("'after' must be >= 0")
            return pull
    except msgspec.DecodeError as err:
        raise ProtocolError(f"bad message: {err}") from None
    raise ProtocolError(f"unknown message type {kind!r}; expected 'pull' or 'push'")


def handle_push(store: Store, msg: _Push, who: Identity) -> dict[str, Any]:
    """Append a pushed batch; the answer the protocol pins (never raises Refused)."""
    try:
        seqs = store.push_json(bytes(msg.events), who)
    except Refused as err:
        return {
            "type": "push_refused",
            "req": msg.req,
            "index": err.index,
            "reason": err.reason,
            "status": err.status,
        }
    return {"type": "push_ok", "req": msg.req, "seqs": seqs}


def events_message(raws: Sequence[bytes], head: int) -> bytes:
    """`{"type": "events", "head": H, "events": [...]}` from stored envelope JSON,
    not re-encoded; `head` (the log's head when sent) tells a client when it
    has caught up."""
    return b'{"type":"events","head":%d,"events":[' % head + b",".join(raws) + b"]}"


# --- the client side ------------------------------------------------------------


@dataclass
class Local:
    """An event of ours the server has not ordered yet."""

    id: str
    event: Event
    sent: bool = False


@dataclass
class RefusedLocal:
    id: str
    event: Event
    reason: str
    status: int


class GapError(Exception):
    """Events arrived with a hole before them: pull again from `head`.
    `fresh`: the ones before the hole, folded all the same."""

    def __init__(self, message: str, fresh: list[Envelope]) -> None:
        super().__init__(message)
        self.fresh = fresh


@dataclass
class Replica:
    """Confirmed state from the server plus our unconfirmed events, rebased on every arrival."""

    client_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    limits: Limits = field(default_factory=Limits)
    on_refused: Callable[[RefusedLocal], None] | None = None
    confirmed: State = field(default_factory=State)
    pending: list[Local] = field(default_factory=list)
    refused: list[RefusedLocal] = field(default_factory=list)
    _view: State | None = None

    @property
    def head(self) -> int:
        return self.confirmed.t.head

    def add(self, name: str, args: dict[str, Any], event_id: str | None = None) -> str:
        """Queue an event of ours; it is checked against the schema at once."""
        event_id = event_id or uuid.uuid4().hex
        ((_, event, _),) = convert_batch(
            [{"id": event_id, "name": name, "args": args}], self.limits
        )
        self.pending.append(Local(event_id, event))
        self._view = None
        return event_id

    def outbox(self) -> list[dict[str, Any]]:
        """The push body for everything not yet sent; marks it sent."""
        out = []
        for local in self.pending:
            if not local.sent:
                local.sent = True
                out.append(
                    {
                        "id": local.id,
                        "name": local.event.name,
                        "args": msgspec.to_builtins(local.event),
                    }
                )
        return out

    def resend_all(self) -> None:
        """After a reconnect: every unconfirmed event goes again (same ids: no doubles)."""
        for local in self.pending:
            local.sent = False

    def receive(self, envelopes: Sequence[Envelope | dict[str, Any] | bytes]) -> list[Envelope]:
        """Fold server-ordered events; ours among them leave the pending list.
        Returns the ones that were new."""
        batch = Batch(self.confirmed, undo=False)
        mine = set()
        fresh: list[Envelope] = []
        for item in envelopes:
            env = _as_envelope(item)
            if env.seq <= self.head:
                continue
            if env.seq != self.head + 1:
                batch.commit()
                raise GapError(f"expected seq {self.head + 1}, got {env.seq}", fresh)
            fold(batch, env)
            mine.add(env.id)
            fresh.append(env)
        batch.commit()
        if mine:
            self.pending = [p for p in self.pending if p.id not in mine]
        self._view = None
        return fresh

    def refuse(self, ids: Sequence[str], index: int, reason: str, status: int = 400) -> None:
        """A push of `ids` was refused at `index`: drop that one, the rest go again."""
        bad = ids[index] if 0 <= index < len(ids) else None
        keep = []
        for local in self.pending:
            if local.id == bad:
                item = RefusedLocal(local.id, local.event, reason, status)
                self.refused.append(item)
                if self.on_refused is not None:
                    self.on_refused(item)
            else:
                if local.id in ids:
                    local.sent = False
                keep.append(local)
        self.pending = keep
        self._view = None

    @property
    def view(self) -> State:
        """What to show: the confirmed state with our pending events applied on top."""
        if not self.pending:
            return self.confirmed
        if self._view is None:
            view = self.confirmed.copy()
            who = Identity("", self.client_id, rules.ALL_RIGHTS)
            seq = view.t.head
            for local in self.pending:
                batch = Batch(view)
                try:
                    rules.check(view, local.event, who, 0)
                    seq += 1
                    fold(
                        batch,
                        Envelope(
                            seq,
                            local.id,
                            local.event.name,
                            local.event,
                            self.client_id,
                            "",
                            view.t.last_at,
                        ),
                    )
                except (Refused, ValueError):
                    batch.rollback()
                    continue
                batch.commit()
            self._view = view
        return self._view


def _as_envelope(item: Envelope | dict[str, Any] | bytes) -> Envelope:
    if isinstance(item, Envelope):
        return item
    if isinstance(item, bytes | str):
        return decode_envelope(item)
    return envelope_from_json(item)


PushMessage = _Push
PullMessage = _Pull

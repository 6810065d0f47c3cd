"""Turning raw pushes into catalogue events, refusing the whole batch on any flaw."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

from .catalogue import CATALOGUE, Event
from .errors import Refused


@dataclass(frozen=True)
class Limits:
    """Size limits on pushes; the server exposes them as traitlets."""

    max_batch_events: int = 1000
    max_event_bytes: int = 1 << 20
    max_batch_bytes: int = 16 << 20
    max_id_length: int = 128


class _WireEvent(msgspec.Struct, forbid_unknown_fields=True):
    id: str
    name: str
    args: msgspec.Raw


_WIRE_BATCH = msgspec.json.Decoder(list[_WireEvent])
_ARG_DECODERS = {name: msgspec.json.Decoder(t) for name, t in CATALOGUE.items()}
_ENCODER = msgspec.json.Encoder()


def _unknown(index: int, name: object) -> Refused:
    return Refused(index, f"unknown event name {name!r}; expected one of the v1 catalogue")


def _check_id(index: int, event_id: object, limits: Limits) -> str:
    if not isinstance(event_id, str) or not event_id:
        raise Refused(index, "the event needs a non-empty string 'id' (its idempotency key)")
    if len(event_id) > limits.max_id_length:
        raise Refused(index, f"'id' is longer than {limits.max_id_length} characters", 413)
    return event_id


def _schema_error(index: int, name: str, err: Exception) -> Refused:
    return Refused(index, f"{name}: {err}")


def decode_batch(raw: bytes, limits: Limits) -> list[tuple[str, Event, bytes]]:
    """Decode a JSON array of `{id, name, args}`; returns (id, event, canonical args)."""
    if len(raw) > limits.max_batch_bytes:
        raise Refused(
            0, f"the batch is {len(raw)} bytes; the limit is {limits.max_batch_bytes}", 413
        )
    try:
        wire = _WIRE_BATCH.decode(raw)
    except msgspec.ValidationError as err:
        return convert_batch(_loose(raw, err), limits)
    except msgspec.DecodeError as err:
        raise Refused(0, f"the batch is not valid JSON: {err}") from None
    _check_count(len(wire), limits)
    out = []
    for i, w in enumerate(wire):
        _check_id(i, w.id, limits)
        decoder = _ARG_DECODERS.get(w.name)
        if decoder is None:
            raise _unknown(i, w.name)
        if len(w.args) > limits.max_event_bytes:
            raise Refused(i, _too_big(len(w.args), limits), 413)
        try:
            event = decoder.decode(w.args)
        except msgspec.DecodeError as err:
            raise _schema_error(i, w.name, err) from None
        out.append((w.id, event, _ENCODER.encode(event)))
    return out


def _loose(raw: bytes, err: Exception) -> list[Any]:
    """Re-decode loosely only to name the offending index in the refusal."""
    try:
        items = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        raise Refused(0, f"the batch is not valid JSON: {err}") from None
    if not isinstance(items, list):
        raise Refused(0, "a push carries a JSON array of events")
    return items


def _too_big(size: int, limits: Limits) -> str:
    return f"the event's args are {size} bytes; the limit is {limits.max_event_bytes}"


def _check_count(n: int, limits: Limits) -> None:
    if n == 0:
        raise Refused(0, "an empty batch")
    if n > limits.max_batch_events:
        raise Refused(
            limits.max_batch_events,
            f"{n} events; a batch holds at most {limits.max_batch_events}",
            413,
        )


def _decode_one(index: int, item: Any, limits: Limits) -> tuple[str, Event, bytes]:
    if not isinstance(item, dict):
        raise Refused(index, "each event is an object {id, name, args}")
    extra = set(item) - {"id", "name", "args"}
    if extra:
        raise Refused(index, f"unexpected envelope field(s) {sorted(extra)}; the server sets them")
    event_id = _check_id(index, item.get("id"), limits)
    name = item.get("name")
    if not isinstance(name, str) or name not in CATALOGUE:
        raise _unknown(index, name)
    args = item.get("args")
    if not isinstance(args, dict):
        raise Refused(index, f"{name}: 'args' must be an object")
    encoded = _ENCODER.encode(args)
    if len(encoded) > limits.max_event_bytes:
        raise Refused(index, _too_big(len(encoded), limits), 413)
    try:
        event = msgspec.convert(args, CATALOGUE[name])
    except msgspec.ValidationError as err:
        raise _schema_error(index, name, err) from None
    return event_id, event, _ENCODER.encode(event)


def convert_batch(items: list[Any], limits: Limits) -> list[tuple[str, Event, bytes]]:
    """The same checks as `decode_batch`, for batches already parsed (HTTP, tests)."""
    if not isinstance(items, list):
        raise Refused(0, "a push carries a JSON array of events")
    _check_count(len(items), limits)
    total = 0
    out = []
    for i, item in enumerate(items):
        decoded = _decode_one(i, item, limits)
        total += len(decoded[2])
        if total > limits.max_batch_bytes:
            raise Refused(i, f"the batch passes {limits.max_batch_bytes} bytes", 413)
        out.append(decoded)
    return out


def event_args(event: Event) -> dict[str, Any]:
    """An event's args as plain JSON-ready data."""
    result: dict[str, Any] = msgspec.to_builtins(event)
    return result

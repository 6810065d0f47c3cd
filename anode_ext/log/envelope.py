"""The envelope the server puts around every event; identical on every wire and file."""

from __future__ import annotations

from typing import Any

import msgspec

from .catalogue import CATALOGUE, Event


class Envelope(msgspec.Struct, frozen=True):
    """An appended event. `user`, `client_id`, `seq` and `at` come from the server."""

    seq: int
    id: str
    name: str
    args: Event
    client_id: str
    user: str
    at: int

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = msgspec.to_builtins(self)
        return out


_ENC = msgspec.json.Encoder()


def encode_envelope(env: Envelope) -> bytes:
    return _ENC.encode(env)


class _RawEnvelope(msgspec.Struct):
    seq: int
    id: str
    name: str
    args: msgspec.Raw
    client_id: str
    user: str
    at: int


_RAW = msgspec.json.Decoder(_RawEnvelope)
ARG_DECODERS = {name: msgspec.json.Decoder(t) for name, t in CATALOGUE.items()}


def decode_envelope(raw: bytes | str) -> Envelope:
    """Parse a wire envelope back into typed form (replicas, the CLI)."""
    r = _RAW.decode(raw)
    return Envelope(
        r.seq, r.id, r.name, ARG_DECODERS[r.name].decode(r.args), r.client_id, r.user, r.at
    )


def envelope_from_json(obj: dict[str, Any]) -> Envelope:
    args = msgspec.convert(obj["args"], CATALOGUE[obj["name"]])
    return Envelope(
        obj["seq"], obj["id"], obj["name"], args, obj["client_id"], obj["user"], obj["at"]
    )

"""Yjs as Anode uses it (pycrdt): updates as they travel, JSON values, text edits.

A text edit is kept in the log twice: as the client's Yjs update (for every
document) and as a compact delta in code points (for the tables, which fold
without a CRDT).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pycrdt import Text


def crdt() -> Any:
    """pycrdt, imported by the first store that keeps a document: a kernel's
    private log never does, and does not pay for it (~0.17 s)."""
    import pycrdt

    return pycrdt


# --- updates as they travel --------------------------------------------------


def decode_update(update: str) -> bytes:
    """The update's bytes, or ValueError with a reason a person can act on."""
    try:
        raw = base64.b64decode(update, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("'update' must be a base64-encoded Yjs update") from None
    if not raw:
        raise ValueError("'update' is empty")
    return raw


def encode_update(update: bytes) -> str:
    return base64.b64encode(update).decode("ascii")


# --- JSON <-> Yjs values ---------------------------------------------------------


def to_y(value: Any) -> Any:
    """JSON for Yjs: numbers are doubles there (an int would reach JavaScript as a BigInt)."""
    if type(value) is int:
        return float(value)
    if isinstance(value, dict):
        return {k: to_y(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_y(v) for v in value]
    return value


def from_y(value: Any) -> Any:
    """Yjs values as JSON: doubles that are whole numbers are ints again (as jupyter_ydoc does)."""
    if type(value) is float and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: from_y(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_y(v) for v in value]
    return value


def same(a: Any, b: Any) -> bool:
    return bool(from_y(a) == from_y(b))


# --- text edits --------------------------------------------------------------------


def set_text(text: Text, new: str) -> None:
    """Make a Y.Text equal `new` with the smallest edit (pycrdt indexes UTF-8 bytes)."""
    old = str(text)
    if old == new:
        return
    limit = min(len(old), len(new))
    start = 0
    while start < limit and old[start] == new[start]:
        start += 1
    end = 0
    while end < limit - start and old[-1 - end] == new[-1 - end]:
        end += 1
    at = len(old[:start].encode())
    gone = len(old[start : len(old) - end].encode())
    if gone:
        del text[at : at + gone]
    middle = new[start : len(new) - end]
    if middle:
        text.insert(at, middle)


def delta_to_chars(before: str, delta: list[dict[str, Any]]) -> list[int | str]:
    """A pycrdt text delta (UTF-8 byte counts) in the log's compact form: a
    positive int retains that many code points, a negative one deletes them, a
    string is inserted (a keystroke is `[9999, "x"]`, a few bytes in the log)."""
    raw = before.encode()
    out: list[int | str] = []
    at = 0
    for op in delta:
        if "retain" in op:
            n = int(op["retain"])
            out.append(len(raw[at : at + n].decode()))
            at += n
        elif "delete" in op:
            n = int(op["delete"])
            out.append(-len(raw[at : at + n].decode()))
            at += n
        elif "insert" in op and isinstance(op["insert"], str):
            out.append(op["insert"])
    return out


def apply_delta(source: str, delta: Iterable[int | str]) -> str:
    """A compact text delta (see `delta_to_chars`) applied to a string."""
    parts: list[str] = []
    at = 0
    for op in delta:
        if isinstance(op, str):
            parts.append(op)
            continue
        if isinstance(op, bool) or not isinstance(op, int) or op == 0:
            raise ValueError(f"not a delta operation: {op!r}")
        n = abs(op)
        if at + n > len(source):
            raise ValueError("the delta goes past the end of the source")
        if op > 0:
            parts.append(source[at : at + n])
        at += n
    parts.append(source[at:])
    return "".join(parts)

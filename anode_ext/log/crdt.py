"""Cell source as a Yjs text (pycrdt), seeded the same way on every replica.

A cell's document is created lazily, at its first CRDT edit, by inserting the
source it had then with a client id derived from the cell and that moment
(`epoch`, the seq that last set the source as plain text). Every replica folds
the same log, so every replica builds the same items with the same ids, and a
client's update made against that seed merges anywhere.
"""

from __future__ import annotations

import base64
import binascii
import zlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pycrdt import Doc

TEXT = "source"


def _y() -> Any:
    """pycrdt, imported at the first CRDT edit: a kernel or a log that never
    sees one does not pay for it (~0.17 s)."""
    import pycrdt

    return pycrdt


def seed_client_id(cell_id: str, epoch: int) -> int:
    return zlib.crc32(f"{cell_id}@{epoch}".encode()) & 0x7FFFFFFF


def seed_doc(cell_id: str, epoch: int, source: str) -> Doc[Any]:
    """The document every replica agrees on before any CRDT edit of this epoch."""
    y = _y()
    doc: Doc[Any] = y.Doc(client_id=seed_client_id(cell_id, epoch))
    text = doc.get(TEXT, type=y.Text)
    if source:
        text += source
    return doc


def text_of(doc: Doc[Any]) -> str:
    return str(doc.get(TEXT, type=_y().Text))


def decode_update(update: str) -> bytes:
    """The update's bytes, or ValueError with a reason a person can act on."""
    try:
        return base64.b64decode(update, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("'update' must be a base64-encoded Yjs update") from None


def apply_update(doc: Doc[Any], update: bytes) -> None:
    """Apply a Yjs update; ValueError if it is not one."""
    try:
        doc.apply_update(update)
    except Exception as err:  # pycrdt raises ValueError or RuntimeError by version
        raise ValueError(f"not a Yjs update: {err}") from None


def replace_text(doc: Doc[Any], source: str) -> None:
    """Make the text equal `source` with the smallest edit (common prefix and suffix kept)."""
    text = doc.get(TEXT, type=_y().Text)
    old = str(text)
    if old == source:
        return
    start = 0
    limit = min(len(old), len(source))
    while start < limit and old[start] == source[start]:
        start += 1
    end = 0
    while end < limit - start and old[-1 - end] == source[-1 - end]:
        end += 1
    with doc.transaction():
        if len(old) - end > start:
            del text[start : len(old) - end]
        middle = source[start : len(source) - end]
        if middle:
            text.insert(start, middle)


def load_doc(client_id: int, state: bytes) -> Doc[Any]:
    doc: Doc[Any] = _y().Doc(client_id=client_id)
    doc.apply_update(state)
    return doc


def encode_update(update: bytes) -> str:
    return base64.b64encode(update).decode("ascii")


def edit(base: Doc[Any], new_source: str, client_id: int | None = None) -> str:
    """A client-side helper: the base64 update turning `base`'s text into `new_source`."""
    y = _y()
    doc: Doc[Any] = y.Doc() if client_id is None else y.Doc(client_id=client_id)
    doc.apply_update(base.get_update())
    before = doc.get_state()
    replace_text(doc, new_source)
    return encode_update(doc.get_update(before))

"""Refusals: why a push appended nothing, in words a person can act on."""

from __future__ import annotations


class AnodeError(Exception):
    """Base of every error this package raises on purpose."""


class Refused(AnodeError):
    """A batch was refused whole; `index` names the offending event.

    `status` follows HTTP: 400 schema, 403 rights, 409 state, 413 size.
    """

    def __init__(self, index: int, reason: str, status: int = 400) -> None:
        super().__init__(f"event {index}: {reason}")
        self.index = index
        self.reason = reason
        self.status = status

    def to_json(self) -> dict[str, object]:
        return {"index": self.index, "reason": self.reason, "status": self.status}


class StoreError(AnodeError):
    """A store that cannot be opened or used: missing, corrupt, newer, foreign."""

"""Fractional indexes: cell order as strings, so a move or insert touches one cell."""

from __future__ import annotations

DIGITS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_BASE = len(DIGITS)
_VALUE = {c: i for i, c in enumerate(DIGITS)}


def is_valid(position: str) -> bool:
    """Non-empty, base-62 digits, and not ending in the smallest digit (keeps room before)."""
    return bool(position) and all(c in _VALUE for c in position) and position[-1] != DIGITS[0]


def between(before: str | None, after: str | None) -> str:
    """A key strictly between `before` and `after` (None: open end)."""
    lo = before or ""
    hi = after
    if hi is not None and lo >= hi:
        raise ValueError(f"{before!r} is not before {after!r}")
    out = []
    i = 0
    while True:
        a = _VALUE[lo[i]] if i < len(lo) else 0
        b = _VALUE[hi[i]] if hi is not None and i < len(hi) else _BASE
        if b - a > 1:
            out.append(DIGITS[(a + b) // 2])
            return "".join(out)
        out.append(DIGITS[a])
        if b - a == 1:
            # the prefix now sorts below hi; anything above lo's tail fits
            hi = None
        i += 1


def spread(n: int) -> list[str]:
    """`n` increasing keys, evenly spaced, for importing a whole notebook."""
    width = 1
    while _BASE**width <= n + 1:
        width += 1
    step = _BASE**width // (n + 1)
    keys = []
    for k in range(1, n + 1):
        v = k * step
        digits = []
        for _ in range(width):
            v, r = divmod(v, _BASE)
            digits.append(DIGITS[r])
        key = "".join(reversed(digits)).rstrip(DIGITS[0])
        keys.append(key)
    return keys

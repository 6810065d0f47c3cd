"""The link to the JavaScript host: events out, blocking requests back in."""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Callable
from typing import Any

# The JS bridge object (``bridge`` in worker.mjs). It is attached after every
# boot, never stored in a memory snapshot.
_js: Any = None
# Takes an output event instead of the host (an entered Output widget: capture.py).
router: Callable[[dict[str, Any]], bool] | None = None


def attach(js_bridge: Any) -> None:
    global _js
    _js = js_bridge


def attached() -> bool:
    return _js is not None


def _default(obj: Any) -> Any:
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(obj)).decode("ascii")
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    return repr(obj)


def _finite(obj: Any) -> Any:
    """A copy of obj where NaN and infinities, which JSON lacks, become None."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def dumps(obj: Any) -> str:
    try:
        return json.dumps(obj, default=_default, allow_nan=False)
    except ValueError:
        return json.dumps(_finite(json.loads(json.dumps(obj, default=_default))))


def post(event: dict[str, Any]) -> None:
    """Send one event (stream, output, display_update, ...) to the host."""
    if _js is None:
        return
    if router is not None and router(event):
        return
    _js.post(dumps(event))


def wait(seconds: float) -> None:
    """Block up to ``seconds`` (at most one slice); raises KeyboardInterrupt
    if the host interrupted, runs other pending signal handlers."""
    _js.wait(seconds * 1000.0)


def take_interrupt() -> bool:
    """Whether the host interrupted since Python last raised for it; clears it."""
    return _js is not None and bool(_js.takeInterrupt())


def request_input(prompt: str, password: bool) -> str:
    return str(_js.input(prompt, password))


def request_pip(args: list[str]) -> tuple[bool, str, list[tuple[str, bytes]]]:
    reply = _js.pip(json.dumps(args))
    wheels = [(str(w.filename), bytes(w.data.to_py())) for w in reply.wheels]
    return bool(reply.ok), str(reply.error), wheels


def take_comms() -> str | None:
    """The front ends' comm events the host put in the mailbox (a JSON list), if any."""
    if _js is None:
        return None
    text = _js.takeComms()
    return text if isinstance(text, str) else None


def comms_done(through: int) -> None:
    """Python handled every front end's comm event up to log seq `through`."""
    if _js is not None:
        _js.commsDone(through)

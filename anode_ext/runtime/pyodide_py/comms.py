"""Comms inside Pyodide: the `comm` package wired to the host.

ipywidgets (and anything else built on `comm`) opens comms and sends messages
through `comm.create_comm` and `comm.get_comm_manager`; here those go to the
host as events, which the runtime agent appends to the notebook's log. A front
end's comm events come back from the log through a mailbox the host fills
(`bridge.take_comms`): drained between requests, and while a cell runs, from
the ~50 ms flush signal, so a slider moved during a long loop reaches its
observer.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import comm
from comm.base_comm import BaseComm, BuffersType, CommManager, MaybeDict

from . import bridge, interrupts, streams

_manager = CommManager()
_draining = False


def _encode(buffers: BuffersType) -> list[str]:
    return [base64.b64encode(bytes(b)).decode("ascii") for b in buffers or ()]


class AnodeComm(BaseComm):
    """A comm whose messages become events in the notebook's log."""

    def publish_msg(
        self,
        msg_type: str,
        data: MaybeDict = None,
        metadata: MaybeDict = None,
        buffers: BuffersType = None,
        **keys: Any,
    ) -> None:
        streams.flush_all()  # what the code printed before comes first
        event: dict[str, Any] = {
            "type": msg_type,
            "comm_id": self.comm_id,
            "data": data or {},
            "metadata": metadata or {},
            "buffers": _encode(buffers),
        }
        if msg_type == "comm_open":
            event["target_name"] = keys.get("target_name") or self.target_name
            event["target_module"] = keys.get("target_module")
        bridge.post(event)


def create_comm(*args: Any, **kwargs: Any) -> BaseComm:
    return AnodeComm(*args, **kwargs)


def get_comm_manager() -> CommManager:
    return _manager


def install() -> None:
    """Before anything imports ipywidgets (in the snapshot too)."""
    comm.create_comm = create_comm
    comm.get_comm_manager = get_comm_manager
    streams.on_flush_signal = _drain_from_signal


def _drain_from_signal() -> None:
    drain(from_signal=True)


def open_comms() -> dict[str, str]:
    """comm_id -> target_name of the comms this interpreter holds."""
    return {cid: c.target_name for cid, c in _manager.comms.items()}


def _message(item: dict[str, Any]) -> dict[str, Any]:
    """A front end's comm event from the log, shaped as ipykernel hands it to `comm`."""
    kind = item["kind"]
    content: dict[str, Any] = {"comm_id": item["comm_id"], "data": item.get("data") or {}}
    if kind == "comm_open":
        content["target_name"] = item.get("target_name", "")
        content["target_module"] = item.get("target_module")
    return {
        "header": {"msg_id": item.get("msg_id", ""), "msg_type": kind},
        "parent_header": {},
        "metadata": item.get("metadata") or {},
        "content": content,
        "buffers": [memoryview(base64.b64decode(b)) for b in item.get("buffers") or ()],
    }


def _dispatch(item: dict[str, Any]) -> None:
    handler = getattr(_manager, item["kind"], None)
    if handler is None:
        return
    try:
        handler(None, None, _message(item))
    except KeyboardInterrupt:
        raise
    except Exception:
        # `comm` logs its handlers' errors itself; this is a malformed message.
        import traceback

        traceback.print_exc()


def drain(*, from_signal: bool = False) -> None:
    """Hand Python what the mailbox holds, in log order; tell the host how far.
    From the flush signal only while a cell's own code runs (not in IPython's
    machinery around it)."""
    global _draining
    if _draining or not bridge.attached() or (from_signal and not interrupts.is_armed()):
        return
    _draining = True
    try:
        while (text := bridge.take_comms()) is not None:
            items = json.loads(text)
            streams.flush_all()
            for item in items:
                _dispatch(item)
            streams.flush_all()
            bridge.comms_done(max(int(i["seq"]) for i in items))
    finally:
        _draining = False

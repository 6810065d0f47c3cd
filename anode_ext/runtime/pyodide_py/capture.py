"""`with output_widget:` captured in Python, into the widget's `outputs`.

ipykernel lets the front end capture: the Output widget remembers the request's
msg_id and the browser routes that request's iopub messages into it. Here
outputs travel through the log (and reach JupyterLab through the document),
not iopub, so the capture happens where they are made: while an Output widget
is entered, what would become an output (streams, displays, errors, clears)
is appended to its `outputs` trait instead, which ipywidgets syncs to every
viewer as widget state. This is what makes `interact` work.
"""

from __future__ import annotations

from typing import Any

from . import bridge, streams

_stack: list[Any] = []  # the Output widgets entered, innermost last
_clear_next: set[int] = set()  # id() of widgets cleared with wait=True


def route(output: dict[str, Any]) -> bool:
    """Append to the innermost entered Output widget; False if none is entered."""
    if not _stack:
        return False
    widget = _stack[-1]
    cleared = id(widget) in _clear_next
    _clear_next.discard(id(widget))
    outputs = [] if cleared else list(widget.outputs)
    last = outputs[-1] if outputs else None
    if (
        output.get("output_type") == "stream"
        and last is not None
        and last.get("output_type") == "stream"
        and last.get("name") == output.get("name")
    ):
        outputs[-1] = {**last, "text": last["text"] + output["text"]}
    else:
        outputs.append(output)
    widget.outputs = tuple(outputs)
    return True


def clear(wait: bool) -> bool:
    """clear_output inside `with widget:`; False if no widget is entered."""
    if not _stack:
        return False
    widget = _stack[-1]
    if wait:
        _clear_next.add(id(widget))
    else:
        _clear_next.discard(id(widget))
        widget.outputs = ()
    return True


def _event(event: dict[str, Any]) -> bool:
    """bridge.router: an output event while a widget is entered goes into it."""
    if not _stack:
        return False
    kind = event.get("type")
    if kind == "stream":
        return route({"output_type": "stream", "name": event["name"], "text": event["text"]})
    if kind == "output":
        return route(dict(event["output"]))
    if kind == "clear_output":
        return clear(bool(event.get("wait")))
    return False


def _enter(self: Any) -> Any:
    streams.flush_all()
    _stack.append(self)
    return self


def _exit(self: Any, etype: Any, evalue: Any, tb: Any) -> bool | None:
    try:
        if etype is not None:
            from IPython import get_ipython

            ip = get_ipython()
            if ip is not None:
                ip.showtraceback((etype, evalue, tb), tb_offset=0)
        streams.flush_all()
    finally:
        if _stack and _stack[-1] is self:
            _stack.pop()
        elif self in _stack:
            _stack.remove(self)
    # As ipywidgets does in IPython: the error is shown in the widget, not raised.
    return True if etype is not None else None


def install() -> None:
    """Patch ipywidgets' Output (imported in the snapshot)."""
    try:
        from ipywidgets.widgets.widget_output import Output
    except ImportError:
        return
    Output.__enter__ = _enter  # type: ignore[method-assign,assignment]
    Output.__exit__ = _exit  # type: ignore[method-assign,assignment]
    bridge.router = _event

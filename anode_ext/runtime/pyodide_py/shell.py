"""An IPython shell whose outputs become Jupyter messages for the host."""

from __future__ import annotations

import asyncio
from typing import Any

from IPython.core import page
from IPython.core.displayhook import DisplayHook
from IPython.core.displaypub import DisplayPublisher
from IPython.core.error import UsageError
from IPython.core.inputtransformer2 import (
    ESCAPE_SINGLES,
    EscapedCommand,
    HelpEnd,
    MagicAssign,
    SystemAssign,
    TransformerManager,
)
from IPython.core.interactiveshell import InteractiveShell
from traitlets import Any as AnyTrait
from traitlets import Type
from traitlets.config import Config

from . import bridge, tracebacks
from .streams import flush_all

NO_SHELL = "Shell commands are not available in the Pyodide sandbox (no processes)."


class AnodeDisplayHook(DisplayHook):
    """Sends a cell's value as an ``execute_result``, as ipykernel does."""

    msg: dict[str, Any] | None = None

    def start_displayhook(self) -> None:
        self.msg = {
            "output_type": "execute_result",
            "execution_count": self.prompt_count,
            "data": {},
            "metadata": {},
        }

    def write_output_prompt(self) -> None:
        pass

    def write_format_data(self, format_dict: Any, md_dict: Any = None) -> None:
        assert self.msg is not None
        self.msg["data"] = format_dict
        self.msg["metadata"] = md_dict or {}

    def finish_displayhook(self) -> None:
        flush_all()
        msg, self.msg = self.msg, None
        if msg is not None and msg["data"]:
            bridge.post({"type": "output", "output": msg, "transient": {}})


class AnodeDisplayPublisher(DisplayPublisher):
    """``display()``, ``update_display()`` and ``clear_output()``."""

    def publish(  # type: ignore[override]
        self,
        data: dict[str, Any],
        metadata: dict[str, Any] | None = None,
        source: Any = None,
        *,
        transient: dict[str, Any] | None = None,
        update: bool = False,
        **kwargs: Any,
    ) -> None:
        flush_all()
        transient = transient or {}
        metadata = metadata or {}
        if update:
            bridge.post(
                {
                    "type": "display_update",
                    "display_id": transient.get("display_id"),
                    "data": data,
                    "metadata": metadata,
                }
            )
            return
        output = {"output_type": "display_data", "data": data, "metadata": metadata}
        bridge.post({"type": "output", "output": output, "transient": transient})

    def clear_output(self, wait: bool = False) -> None:
        flush_all()
        bridge.post({"type": "clear_output", "wait": bool(wait)})


_TOKEN_TRANSFORMERS = [MagicAssign, SystemAssign, EscapedCommand, HelpEnd]
_STARTS = tuple(ESCAPE_SINGLES)


class AnodeTransformerManager(TransformerManager):
    """IPython's, except that a cell with nothing its token transforms look
    for (``%``, ``!``, ``?``, or a line starting with ``,``, ``;`` or ``/``)
    is not tokenized for them: ~1.5 ms a cell in wasm, for every cell."""

    def do_token_transforms(self, lines: list[str]) -> list[str]:
        plain = self.token_transformers == _TOKEN_TRANSFORMERS and not any(
            "%" in line or "!" in line or "?" in line or line.lstrip().startswith(_STARTS)
            for line in lines
        )
        return lines if plain else list(super().do_token_transforms(lines))


class AnodeShell(InteractiveShell):
    displayhook_class = Type(AnodeDisplayHook)
    display_pub_class = Type(AnodeDisplayPublisher)
    last_error = AnyTrait(None, allow_none=True)
    error_in_displayhook = False
    interrupting = False

    def init_hooks(self) -> None:
        super().init_hooks()
        self.set_hook("show_in_pager", page.as_hook(self._page_payload), 99)

    def init_virtualenv(self) -> None:
        pass

    def _page_payload(
        self, strg: Any, start: int = 0, screen_lines: int = 0, pager_cmd: Any = None
    ) -> None:
        # What `?` and `??` show: a "page" payload in the execute reply.
        data = strg if isinstance(strg, dict) else {"text/plain": strg}
        assert self.payload_manager is not None
        self.payload_manager.write_payload({"source": "page", "data": data, "start": max(0, start)})

    def ask_exit(self) -> None:
        assert self.payload_manager is not None
        self.payload_manager.write_payload({"source": "ask_exit", "keepkernel": False})

    def set_next_input(self, s: str, replace: bool = False) -> None:
        assert self.payload_manager is not None
        self.payload_manager.write_payload(
            {"source": "set_next_input", "text": s, "replace": replace}
        )

    def system(self, cmd: str) -> None:
        raise UsageError(NO_SHELL)

    system_piped = system_raw = system

    def getoutput(self, cmd: str, split: bool = True, depth: int = 0) -> Any:
        raise UsageError(NO_SHELL)

    def enable_gui(self, gui: Any = None) -> None:
        raise UsageError("GUI event loops are not available in the Pyodide sandbox.")

    def _showtraceback(self, etype: Any, evalue: Any, stb: list[str]) -> None:
        flush_all()
        if self.interrupting and issubclass(etype, (asyncio.CancelledError, KeyboardInterrupt)):
            # An interrupt cancelled an awaiting cell: report it as one.
            etype, evalue = KeyboardInterrupt, KeyboardInterrupt()
            stb = self.InteractiveTB.get_exception_only(etype, evalue)
        error = {
            "output_type": "error",
            "ename": etype.__name__,
            "evalue": str(evalue),
            "traceback": list(stb),
        }
        self.last_error = error
        if getattr(self.displayhook, "msg", None) is not None:
            # Formatting the cell's value failed: the execution failed too.
            self.error_in_displayhook = True
        bridge.post({"type": "output", "output": error, "transient": {}})


def make_shell() -> AnodeShell:
    config = Config()
    config.HistoryManager.enabled = False  # no sqlite3 in the sandbox
    config.HistoryManager.hist_file = ":memory:"
    shell = AnodeShell.instance(config=config)
    shell.input_transformer_manager = AnodeTransformerManager()
    shell.display_formatter.active_types = list(shell.display_formatter.format_types)
    shell.enable_html_pager = False
    tracebacks.install()
    return shell


def current() -> AnodeShell:
    shell = AnodeShell.instance()
    assert isinstance(shell, AnodeShell)
    return shell


__all__ = ["AnodeShell", "current", "make_shell"]

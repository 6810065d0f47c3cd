"""Make IPython's coloured tracebacks cheap to repeat.

For every traceback, IPython (through stack_data) builds a new pygments style
class, a new Terminal256Formatter (a 256-colour table and a style table), and
for every frame a new lexer class, whose token tables pygments then compiles
anew. Each is a pure function of the theme; natively that is a few ms, but in
Pyodide it cost ~0.3 s per error. Here each is built once and reused; the
text of every traceback stays exactly what IPython would print.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

_formatters: dict[tuple[tuple[str, Any], ...], dict[str, Any]] = {}


@functools.cache
def _range_lexer(base: type) -> type:
    """One subclass per lexer type: marks tokens inside ``self.ranges`` as
    ExecutingNode (what stack_data's per-call class does)."""

    class RangeLexer(base):  # type: ignore[valid-type, misc]
        ranges: list[tuple[int, int]] = []

        def get_tokens(self, text: str) -> Iterator[tuple[Any, str]]:
            offset = 0
            for ttype, value in super().get_tokens(text):
                if any(start <= offset < end for start, end in self.ranges):
                    ttype = ttype.ExecutingNode
                offset += len(value)
                yield ttype, value

    return RangeLexer


def _highlight_ranges(formatter: Any, code: str, ranges: list[tuple[int, int]]) -> list[str]:
    import pygments
    from pygments.lexers import get_lexer_by_name

    lexer = _range_lexer(type(get_lexer_by_name("python3")))(stripnl=False)
    lexer.ranges = ranges
    try:
        highlighted: str = pygments.highlight(code, lexer, formatter)
    except Exception:  # as stack_data: plain code rather than no traceback
        highlighted = code
    return highlighted.splitlines()


def _copy_shared_ast_nodes_as_themselves() -> None:
    """`executing` (under stack_data) sets ``parent`` on every node of each
    tree it reads, the parser's shared field-less nodes (Load, Store, Add,
    ...) included. A deepcopy of any small AST then follows that link into
    a whole module's tree: after one traceback (the warm-up has one, so the
    snapshot has it), each of Pyodide's ``runPython`` calls, four of them in
    every boot, cost ~0.3 s here (its return template is deep-copied).
    The parser shares those nodes between trees anyway; a copy may too."""
    import ast

    for base in (ast.expr_context, ast.boolop, ast.operator, ast.unaryop, ast.cmpop):
        for cls in base.__subclasses__():
            cls.__deepcopy__ = lambda self, memo: self


def install() -> None:
    import stack_data
    import stack_data.core
    from pygments.formatters import terminal256

    if getattr(stack_data, "_anode_cached", False):
        return
    _copy_shared_ast_nodes_as_themselves()
    stack_data.style_with_executing_node = functools.cache(stack_data.style_with_executing_node)
    stack_data.core._pygmented_with_ranges = _highlight_ranges
    base = terminal256.Terminal256Formatter

    class Terminal256Formatter(base):  # type: ignore[valid-type, misc]
        """Built once per set of options; later instances share its tables
        (a formatter keeps no state between ``format`` calls)."""

        def __init__(self, **options: Any) -> None:
            try:
                key = tuple(sorted(options.items()))
                hash(key)
            except TypeError:
                super().__init__(**options)
                return
            if key in _formatters:
                self.__dict__.update(_formatters[key])
                return
            super().__init__(**options)
            _formatters[key] = dict(self.__dict__)

    terminal256.Terminal256Formatter = Terminal256Formatter
    stack_data._anode_cached = True

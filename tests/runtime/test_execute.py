"""IPython semantics on the shared host: results, displays, errors, magics,
streaming, input, interrupt, and the completion/inspection requests."""

from __future__ import annotations

import asyncio
import re
import time

import pytest

from anode_ext.runtime import PyodideHost

from .conftest import run

pytestmark = pytest.mark.asyncio(loop_scope="session")

ANSI = re.compile(r"\x1b\[[0-9;]*m")


async def test_execute_result_out_and_underscore(host: PyodideHost) -> None:
    first = await run(host, "6 * 7")
    n = first.reply.execution_count
    assert first.reply.status == "ok"
    assert first.events[0] == {"kind": "execute_input", "execution_count": n}
    assert first.outputs("execute_result")[0]["execution_count"] == n
    assert first.result() == "42"
    assert (await run(host, "_ + 1")).result() == "43"
    assert (await run(host, f"Out[{n}] * 2")).result() == "84"
    quiet = await run(host, "1 + 1;")
    assert quiet.outputs() == []


async def test_silent_runs_leave_no_trace(host: PyodideHost) -> None:
    before = (await run(host, "None")).reply.execution_count
    silent = await run(host, "print('s'); 5", silent=True)
    assert silent.outputs("execute_result") == []
    assert not any(e["kind"] == "execute_input" for e in silent.events)
    assert (await run(host, "None")).reply.execution_count == before + 1


async def test_user_expressions(host: PyodideHost) -> None:
    r = await run(host, "ux = 3", user_expressions={"sq": "ux ** 2"})
    assert r.reply.user_expressions["sq"]["data"]["text/plain"] == "9"


async def test_display_update_and_clear_output(host: PyodideHost) -> None:
    r = await run(
        host,
        "from IPython.display import display, HTML, clear_output\n"
        "h = display(HTML('<b>one</b>'), display_id=True)\n"
        "h.update(HTML('<i>two</i>'))\n"
        "display({'application/json': {'a': 1}}, raw=True)\n"
        "clear_output(wait=True)\n"
        "print('after')",
    )
    kinds = [e["kind"] for e in r.events]
    assert kinds == [
        "execute_input",
        "output",
        "display_update",
        "output",
        "clear_output",
        "output",
    ]
    shown, update, raw, clear = r.events[1], r.events[2], r.events[3], r.events[4]
    assert shown["output"]["output_type"] == "display_data"
    assert shown["output"]["data"]["text/html"] == "<b>one</b>"
    display_id = shown["transient"]["display_id"]
    assert update["display_id"] == display_id
    assert update["data"]["text/html"] == "<i>two</i>"
    assert raw["output"]["data"] == {"application/json": {"a": 1}}
    assert clear == {"kind": "clear_output", "wait": True}
    assert r.text() == "after\n"


async def test_rich_repr_in_execute_result(host: PyodideHost) -> None:
    r = await run(
        host,
        "class R:\n"
        "    def _repr_html_(self): return '<p>rich</p>'\n"
        "    def __repr__(self): return 'R()'\n"
        "R()",
    )
    data = r.outputs("execute_result")[0]["data"]
    assert data == {"text/html": "<p>rich</p>", "text/plain": "R()"}


async def test_error_has_an_ipython_traceback(host: PyodideHost) -> None:
    r = await run(host, "def f():\n    return 1 / 0\nf()")
    assert r.reply.status == "error"
    assert r.reply.error is not None
    assert (r.reply.error.ename, r.reply.error.evalue) == ("ZeroDivisionError", "division by zero")
    [err] = r.outputs("error")
    assert err["traceback"] == r.reply.error.traceback
    text = ANSI.sub("", "\n".join(err["traceback"]))
    assert "Traceback (most recent call last)" in text
    assert "----> 3 f()" in text and "return 1 / 0" in text
    syntax = await run(host, "x = )")
    assert syntax.reply.error is not None and syntax.reply.error.ename == "SyntaxError"
    # Styles, formatter and lexer are built once (tracebacks.py) and reused:
    # the same error gives the same coloured traceback, the failing call marked.
    again = await run(host, "def f():\n    return 1 / 0\nf()")
    assert again.reply.error is not None
    cell = re.compile(r"In\[\d+\]")
    assert [cell.sub("In[n]", t) for t in again.reply.error.traceback] == [
        cell.sub("In[n]", t) for t in r.reply.error.traceback
    ]
    assert "30;43m" in "".join(r.reply.error.traceback)  # the failing call, highlighted


async def test_reused_traceback_highlighting_equals_stack_datas(host: PyodideHost) -> None:
    """tracebacks.py reuses one lexer class and formatter; what it produces
    must equal stack_data's own per-call highlighting."""
    code = (
        "import stack_data, stack_data.core, stack_data.utils\n"
        "from IPython.utils.PyColorize import theme_table\n"
        "from pygments.formatters.terminal256 import Terminal256Formatter\n"
        "style = stack_data.style_with_executing_node(\n"
        "    theme_table['linux'].as_pygments_style(), 'bg:ansiyellow')\n"
        "src = 'def f(x):\\n    return x / 0\\n'\n"
        "mine = stack_data.core._pygmented_with_ranges(\n"
        "    Terminal256Formatter(style=style), src, [(25, 30)])\n"
        "theirs = stack_data.utils._pygmented_with_ranges(\n"
        "    Terminal256Formatter(style=style), src, [(25, 30)])\n"
        "assert stack_data.core._pygmented_with_ranges is not stack_data.utils._pygmented_with_ranges\n"
        "assert Terminal256Formatter(style=style).style_string\n"
        "(mine == theirs, mine != src.splitlines())"
    )
    assert (await run(host, code)).result() == "(True, True)"


async def test_after_a_traceback_small_asts_copy_small(host: PyodideHost) -> None:
    """`executing` links the parser's shared nodes (Load, Add, ...) to the
    trees it reads; a deepcopy of a small AST (Pyodide's runPython makes one
    each call) must not follow that link into them."""
    assert (await run(host, "def f():\n    return [1][2] + 3\nf()")).reply.status == "error"
    code = (
        "import ast, copy\n"
        "tree = ast.parse('x = [y + 1 for y in z if not y]')\n"
        "memo = {}\n"
        "twin = copy.deepcopy(tree, memo)\n"
        "(len(memo) < 100, ast.dump(twin) == ast.dump(tree), twin is not tree,\n"
        " exec(compile(twin, 'c', 'exec'), {'z': [0, 2]}) is None)"
    )
    assert (await run(host, code)).result() == "(True, True, True, True)"


@pytest.mark.parametrize("kind", ["def", "async def"])
async def test_a_failure_of_ipythons_run_cell_is_an_error_reply(
    host: PyodideHost, kind: str
) -> None:
    """What escapes IPython's run_cell itself (user errors it catches) ends
    that cell with an error, not the runtime; the next cell runs as usual."""
    patch = (
        "sh = get_ipython()\n"
        f"{kind} broken(*args, **kwargs):\n"
        "    del sh.run_cell_async  # only once\n"
        "    raise RuntimeError('run_cell broke')\n"
        "sh.run_cell_async = broken"
    )
    assert (await run(host, patch)).reply.status == "ok"
    r = await run(host, "1 + 1")
    assert r.reply.status == "error" and r.reply.error is not None
    assert (r.reply.error.ename, r.reply.error.evalue) == ("RuntimeError", "run_cell broke")
    assert [e["ename"] for e in r.outputs("error")] == ["RuntimeError"]
    assert (await run(host, "1 + 1")).result() == "2"


async def test_magics(host: PyodideHost) -> None:
    t = await run(host, "%time sum(range(10))")
    assert "Wall time" in t.text() and t.result() == "45"
    ti = await run(host, "%timeit -n 2 -r 2 sum(range(10))")
    assert "per loop" in ti.text()
    wf = await run(host, "%%writefile magic.txt\nwritten by a cell\n")
    assert "Writing magic.txt" in wf.text()
    assert (await run(host, "open('magic.txt').read()")).result() == "'written by a cell\\n'"
    shell = await run(host, "!ls")
    assert shell.reply.status == "error" and "not available" in shell.reply.error.evalue  # type: ignore[union-attr]


async def test_ipython_syntax_is_transformed_and_plain_python_is_not(host: PyodideHost) -> None:
    """The shell skips IPython's token transforms for cells with nothing they
    look for (shell.py); everything they do must still happen."""
    assert (await run(host, "/abs -3")).result() == "3"
    assert (await run(host, ",print a b")).text() == "a b\n"
    assert (await run(host, ";print a b")).text() == "a b\n"
    assert (await run(host, "t = %time 6 * 7\nt")).result() == "42"
    assert (await run(host, "if True:\n    x = %time 1\nx")).result() == "1"
    plain = "d = {'a': 1}\nprint(d['a'] / 2, 'x' in 'y')\n# no escapes: 100 percent Python"
    assert (await run(host, plain)).text() == "0.5 False\n"
    assert (await run(host, "s = '100% sure?'\ns")).result() == "'100% sure?'"
    check = "import asyncio\nawait asyncio.sleep(0)\n'awaited'"
    assert (await run(host, check)).result() == "'awaited'"


async def test_question_mark_gives_a_page_payload(host: PyodideHost) -> None:
    r = await run(host, "len?")
    assert r.reply.status == "ok"
    [page] = r.reply.payload
    assert page["source"] == "page"
    assert "Return the number of items" in ANSI.sub("", page["data"]["text/plain"])


async def test_workdir_is_the_cwd_and_writable(host: PyodideHost) -> None:
    (host.workdir / "from_host.txt").write_text("hello from the host")
    r = await run(
        host,
        "import os\n"
        "open('from_sandbox.txt', 'w').write('hi')\n"
        "os.getcwd(), open('from_host.txt').read()",
    )
    assert r.result() == "('/home/pyodide/work', 'hello from the host')"
    assert (host.workdir / "from_sandbox.txt").read_text() == "hi"


async def test_wall_clock_has_sub_millisecond_resolution(host: PyodideHost) -> None:
    # Emscripten reads the wall clock in whole milliseconds: `%time` printed
    # "Wall time: 0 ns" and datetime.now() always ended in 000 microseconds.
    code = (
        "import datetime, time\n"
        "t0 = time.perf_counter()\n"
        "seen = {time.time() for _ in range(5000)}\n"
        "per_ms = len(seen) / ((time.perf_counter() - t0) * 1000)\n"
        "sub_ms = {datetime.datetime.now().microsecond % 1000 for _ in range(50)}\n"
        "print(per_ms > 5, len(sub_ms) > 5, time.time())"
    )
    before = time.time()
    r = await run(host, code)
    after = time.time()
    many_per_ms, sub_ms, wall = r.text().split()
    assert (many_per_ms, sub_ms) == ("True", "True"), r.text()
    assert before - 0.01 <= float(wall) <= after + 0.01  # and still the host's clock
    r = await run(host, "%time x = sum(range(100))")
    assert re.search(r"Wall time: [1-9][0-9.]* \S?s\n", r.text()), r.text()


async def test_stdout_streams_while_the_cell_runs(host: PyodideHost) -> None:
    r = await run(
        host,
        "import time, sys\n"
        "for i in range(3):\n"
        "    print(i)\n"
        "    time.sleep(0.4)\n"
        "print('err', file=sys.stderr)",
    )
    streams = [
        (t, e["output"]) for t, e in zip(r.times, r.events, strict=True) if e["kind"] == "output"
    ]
    assert r.text() == "0\n1\n2\n" and r.text("stderr") == "err\n"
    # The lines arrive as they are printed, not all at the end.
    firsts = [t for t, o in streams if o["name"] == "stdout"]
    assert len(firsts) == 3 and firsts[-1] - firsts[0] > 0.6


async def test_busy_stream_is_flushed_without_sleep(host: PyodideHost) -> None:
    seen: list[float] = []
    t0 = time.monotonic()

    def on(ev: dict) -> None:  # type: ignore[type-arg]
        if ev["kind"] == "output" and "tick" in ev["output"].get("text", ""):
            seen.append(time.monotonic() - t0)

    code = "import time\nprint('tick')\nt = time.time()\nwhile time.time() - t < 1.5: pass"
    await run(host, code, on_event=on)
    assert seen and seen[0] < 1.2


async def test_interrupt_busy_loop_within_a_second(host: PyodideHost) -> None:
    started = asyncio.Event()

    def on(ev: dict) -> None:  # type: ignore[type-arg]
        if ev["kind"] == "output" and "go" in ev["output"].get("text", ""):
            started.set()

    task = asyncio.create_task(run(host, "print('go')\nwhile True: pass", on_event=on))
    await asyncio.wait_for(started.wait(), 30)
    await asyncio.sleep(0.2)
    t0 = time.monotonic()
    host.interrupt()
    r = await asyncio.wait_for(task, 10)
    assert time.monotonic() - t0 < 5.0  # the latency itself: bench/kernel.py
    assert r.reply.status == "error" and r.reply.error is not None
    assert r.reply.error.ename == "KeyboardInterrupt"
    assert (await run(host, "'still alive'")).result() == "'still alive'"


@pytest.mark.parametrize(
    "code", ["import time; time.sleep(60)", "import asyncio; await asyncio.sleep(60)"]
)
async def test_interrupt_sleeping_cells(host: PyodideHost, code: str) -> None:
    task = asyncio.create_task(run(host, code))
    await asyncio.sleep(0.5)
    t0 = time.monotonic()
    host.interrupt()
    r = await asyncio.wait_for(task, 10)
    # Sleeps wake at once; the bound only tells an interrupt from a timeout.
    assert time.monotonic() - t0 < 5.0
    assert r.reply.error is not None and r.reply.error.ename == "KeyboardInterrupt"


async def test_each_interrupt_lands_once_while_output_streams(host: PyodideHost) -> None:
    # The 50 ms flush signal shares Pyodide's one-slot signal buffer with
    # SIGINT: no interrupt may be lost to it, and none may be raised twice.
    code = "import itertools\nfor i in itertools.count():\n    sum(range(500))\n    if i % 200 == 0: print(i)"
    for round in range(8):
        started = asyncio.Event()

        def on(ev: dict, started: asyncio.Event = started) -> None:  # type: ignore[type-arg]
            if ev["kind"] == "output":
                started.set()

        task = asyncio.create_task(run(host, code, on_event=on))
        await asyncio.wait_for(started.wait(), 30)
        await asyncio.sleep(0.013 * round)
        host.interrupt()
        r = await asyncio.wait_for(task, 10)
        assert r.reply.error is not None and r.reply.error.ename == "KeyboardInterrupt", round
        assert (await run(host, "'next'")).result() == "'next'", round


async def test_interrupt_when_idle_is_harmless(host: PyodideHost) -> None:
    host.interrupt()
    await asyncio.sleep(0.2)
    assert (await run(host, "1")).reply.status == "ok"


async def test_input_and_getpass(host: PyodideHost) -> None:
    asked: list[tuple[str, bool]] = []

    async def on_input(prompt: str, password: bool) -> str:
        asked.append((prompt, password))
        return "secret" if password else "Ada"

    r = await run(
        host,
        "import getpass\nname = input('name? ')\npw = getpass.getpass('pw: ')\nname, pw",
        on_input=on_input,
    )
    assert asked == [("name? ", False), ("pw: ", True)]
    assert r.result() == "('Ada', 'secret')"


async def test_input_without_a_frontend_raises(host: PyodideHost) -> None:
    r = await run(host, "input('x')")
    assert r.reply.error is not None and r.reply.error.ename == "StdinNotImplementedError"


async def test_interrupt_while_waiting_for_input(host: PyodideHost) -> None:
    waiting = asyncio.Event()

    async def on_input(prompt: str, password: bool) -> str:
        waiting.set()
        await asyncio.sleep(3600)
        return ""

    task = asyncio.create_task(run(host, "input('?')", on_input=on_input))
    await asyncio.wait_for(waiting.wait(), 30)
    host.interrupt()
    r = await asyncio.wait_for(task, 10)
    assert r.reply.error is not None and r.reply.error.ename == "KeyboardInterrupt"


async def test_complete_inspect_is_complete(host: PyodideHost) -> None:
    await run(host, "import os\nsome_variable = 1")
    c = await host.complete("some_var", 8)
    assert c["status"] == "ok" and "some_variable" in c["matches"]
    assert (c["cursor_start"], c["cursor_end"]) == (0, 8)
    c = await host.complete("os.pa", 5)
    assert "os.path" in c["matches"] or "path" in c["matches"]
    i = await host.inspect("print(", 5)
    assert i["found"] and "print" in ANSI.sub("", i["data"]["text/plain"])
    assert not (await host.inspect("no_such_name", 5))["found"]
    assert await host.is_complete("for i in x:") == {"status": "incomplete", "indent": "    "}
    assert await host.is_complete("x = 1") == {"status": "complete"}
    assert (await host.is_complete("x = )"))["status"] == "invalid"


async def test_requests_while_a_cell_runs_wait_their_turn(host: PyodideHost) -> None:
    cell = asyncio.create_task(run(host, "import time; time.sleep(0.5); 'cell'"))
    completion = asyncio.create_task(host.complete("pri", 3))
    assert (await cell).result() == "'cell'"
    assert "print" in (await completion)["matches"]

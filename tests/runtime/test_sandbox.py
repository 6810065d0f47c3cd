"""Each door out of the sandbox, tried from Python inside it."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from anode_ext.runtime import PyodideHost, assets
from anode_ext.runtime.node import find_node, node_version, permission_flags

from .conftest import run

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def error_of(host: PyodideHost, code: str) -> tuple[str, str]:
    r = await run(host, code)
    assert r.reply.status == "error", (code, r.events)
    assert r.reply.error is not None
    return r.reply.error.ename, r.reply.error.evalue


async def test_host_files_are_not_there(host: PyodideHost) -> None:
    for path in ("/etc/passwd", "/root/.ssh/id_rsa", str(Path.home() / ".bashrc")):
        assert (await error_of(host, f"open({path!r}).read()"))[0] == "FileNotFoundError"
    r = await run(
        host, "import os; os.path.exists(os.path.expanduser('~/.ssh')), sorted(os.listdir('/'))"
    )
    assert r.result().startswith("(False, ")
    assert "'root'" not in r.result() and "'etc'" not in r.result()
    # The package's own files, mounted for the runtime, are read-only.
    for code in (
        "open('/opt/anode/site/x.py', 'w')",
        "open('/opt/anode/site/IPython/__init__.py', 'a')",
        "import os; os.mkdir('/opt/anode/site/d')",
    ):
        assert (await error_of(host, code))[0] == "PermissionError"
    assert (await run(host, "import IPython; IPython.__version__")).reply.status == "ok"


async def test_import_js_has_no_node(host: PyodideHost) -> None:
    r = await run(
        host,
        "import js\n"
        "[n for n in ('process', 'require', 'child_process', 'globalThis', 'eval', 'Function',\n"
        "             'fetch', 'WebSocket', 'XMLHttpRequest', 'module', 'Deno', 'Bun')\n"
        " if hasattr(js, n)]",
    )
    assert r.result() == "[]"
    assert (await error_of(host, "from js import require"))[0] == "ImportError"
    assert (await error_of(host, "import js; js.process.binding('fs')"))[0] == "AttributeError"


async def test_pyodide_js_cannot_mount_or_load(host: PyodideHost) -> None:
    r = await run(
        host,
        "import pyodide_js\n"
        "[n for n in ('FS', 'mountNodeFS', 'loadPackage', '_module', 'runPython', 'registerJsModule',\n"
        "             'setStdout', 'loadPackagesFromImports', 'pyimport', 'ERRNO_CODES')\n"
        " if hasattr(pyodide_js, n)]",
    )
    assert r.result() == "[]"
    r = await run(host, "import js; sorted(js.Object.keys(pyodide_js._api))")
    assert r.result() == "['config', 'scheduleCallback']"


async def test_function_constructor_is_closed(host: PyodideHost) -> None:
    for expr in (
        "js.Object.constructor('return globalThis')()",
        "js.setTimeout.constructor('return process')()",
        "js.Reflect.getPrototypeOf(js.Object).constructor('return this')()",
        "pyodide_js._api.scheduleCallback.constructor('return process')()",
        "js.Promise.resolve.constructor('return require')()",
    ):
        ename, evalue = await error_of(host, f"import js, pyodide_js\n{expr}")
        assert ename == "JsException" and "Code generation from strings disallowed" in evalue
    assert (await error_of(host, "from pyodide.code import run_js; run_js('1')"))[
        0
    ] == "ImportError"


async def test_no_js_object_reachable_from_python_holds_node(host: PyodideHost) -> None:
    # Python-level introspection (gc, __class__, __subclasses__) finds every
    # JsProxy Python holds: none of them is, or leads to, Node's globals.
    r = await run(
        host,
        "import gc, js, sys\n"
        "from pyodide.ffi import JsProxy\n"
        "bad = {'process', 'require', 'FS', 'mountNodeFS', '_module', 'loadPackage', 'Module'}\n"
        "found, unreadable = [], []\n"
        "proxies = [o for o in gc.get_objects() if isinstance(o, JsProxy)]\n"
        "proxies += [m for m in sys.modules.values() if isinstance(m, JsProxy)]\n"
        "for o in proxies:\n"
        "    for name in bad:\n"
        "        try:\n"
        "            if hasattr(o, name): found.append((repr(o)[:40], name))\n"
        "        except Exception as err: unreadable.append((repr(o)[:40], name, repr(err)))\n"
        "len(proxies) > 0, found, unreadable",
    )
    # A proxy that cannot be asked is not a pass: it could hide what it holds.
    assert r.result() == "(True, [], [])"


async def test_no_processes(host: PyodideHost) -> None:
    assert (await error_of(host, "import os; os.fork()"))[0] == "OSError"
    assert (await error_of(host, "import subprocess; subprocess.run(['id'])"))[0] == "OSError"
    # system() reaches Emscripten's child_process shim: "command not found".
    r = await run(host, "import os, posix; os.system('touch /tmp/anode-pwned'), posix.system('id')")
    assert r.result() == "(32512, 32512)"
    assert not Path("/tmp/anode-pwned").exists()


async def test_no_network_to_a_local_server(host: PyodideHost) -> None:
    connections = 0

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        writer.close()

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        ename, _ = await error_of(
            host,
            f"import socket; s = socket.socket(); s.settimeout(3); s.connect(('127.0.0.1', {port}))",
        )
        assert ename in {"OSError", "ConnectionRefusedError", "TimeoutError"}
        r = await run(
            host,
            f"import urllib.request\nurllib.request.urlopen('http://127.0.0.1:{port}/', timeout=3)",
        )
        assert r.reply.status == "error"
        r = await run(
            host, f"from pyodide.http import pyfetch\nawait pyfetch('http://127.0.0.1:{port}/')"
        )
        assert r.reply.status == "error"
        await asyncio.sleep(0.2)
        assert connections == 0
    finally:
        server.close()
        await server.wait_closed()
    assert host.info is not None and host.info.network_isolated


async def test_huge_allocation_is_a_memory_error(host: PyodideHost) -> None:
    ename, _ = await error_of(host, "x = [0] * (10 * 1024**3 // 8)")
    assert ename == "MemoryError"
    ename, _ = await error_of(host, "x = bytearray(10 * 1024**3)")
    assert ename in {"MemoryError", "OverflowError"}  # wasm32: not even addressable
    assert (await run(host, "'fine'")).result() == "'fine'"


async def test_node_permission_model_is_the_outer_wall(tmp_path: Path) -> None:
    """If Python ever reached Node, the process itself may read only its own
    files and the workdir, and may start no process."""
    node = find_node()
    flags = permission_flags(node_version(node), [tmp_path, assets.JS_DIR], [tmp_path])
    assert probe_wall(node, flags, tmp_path) == WALL


async def test_the_real_hosts_flags_are_the_wall(host: PyodideHost) -> None:
    """The flags a real host gave its Node (read from /proc, not rebuilt here):
    the permission model is on, nothing beyond files is allowed, and probing
    with exactly those flags finds the host's files, other writes and child
    processes refused. Break caught: the host's read list widened to `/`."""
    assert host.pid is not None
    argv = Path(f"/proc/{host.pid}/cmdline").read_bytes().decode().split("\0")
    node = next(a for a in argv if Path(a).name.startswith("node"))
    flags = [a for a in argv if a.startswith("--")]
    assert "--permission" in flags or "--experimental-permission" in flags, argv
    assert not [f for f in flags if f.split("=")[0] in ALLOW_MORE], flags
    read = [Path(p) for f in flags if f.startswith("--allow-fs-read=") for p in f[16:].split(",")]
    write = [Path(p) for f in flags if f.startswith("--allow-fs-write=") for p in f[17:].split(",")]
    assert read and write, flags
    for p in read:
        assert not Path("/etc/passwd").is_relative_to(p), p
        assert not Path.home().is_relative_to(p), p
    perm = [
        f for f in flags if f.startswith(("--permission", "--experimental-permission", "--allow-"))
    ]
    assert probe_wall(node, perm, write[0]) == WALL


# What a Node under the permission model must refuse, and the one read it may do.
WALL = {
    "passwd": "ERR_ACCESS_DENIED",
    "write": "ERR_ACCESS_DENIED",
    "spawn": "ERR_ACCESS_DENIED",
    "ok": "allowed",
}


def probe_wall(node: str, flags: list[str], where: Path) -> dict[str, str]:
    """Run a probe script (written in `where`) under `flags`: what each try met."""
    script = where / f"probe-{os.getpid()}.mjs"
    script.write_text(
        "import fs from 'node:fs'; import cp from 'node:child_process';\n"
        "const tries = {passwd: () => fs.readFileSync('/etc/passwd'),\n"
        "  write: () => fs.writeFileSync('/tmp/anode-probe', 'x'),\n"
        "  spawn: () => cp.execSync('id'), ok: () => fs.readFileSync(process.argv[2])};\n"
        "for (const [k, f] of Object.entries(tries)) {\n"
        "  try { f(); console.log(k, 'allowed'); } catch (e) { console.log(k, e.code); } }\n"
    )
    try:
        out = subprocess.run(
            [node, *flags, str(script), str(script)], capture_output=True, text=True, timeout=60
        )
    finally:
        script.unlink()
    return dict(line.split(" ", 1) for line in out.stdout.split("\n") if line)


ALLOW_MORE = ("--allow-child-process", "--allow-addons", "--allow-wasi", "--allow-inspector")


async def test_network_on_reaches_a_local_server(make_host: Any) -> None:
    """`network=True` (`runtime_network`, `anode runtime --network`): no
    namespace around Node, so code reaches a server on this machine. Break
    this catches: the switch ignored (the runtime always isolated)."""
    hits = 0

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal hits
        hits += 1
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        host = await make_host(network=True)
        assert host.info is not None and not host.info.network_isolated
        r = await run(
            host,
            "from pyodide.http import pyfetch\n"
            f"(await (await pyfetch('http://127.0.0.1:{port}/')).string())",
        )
        assert r.reply.status == "ok", r.reply
        assert r.result() == "'hello'" and hits == 1
    finally:
        server.close()
        await server.wait_closed()

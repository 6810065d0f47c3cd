"""``%pip install`` on the host: download pure-Python wheels with pip.

The sandbox asks, the host runs ``pip download`` (with the index and options
pip is configured with on this machine: ``pip.conf``, ``PIP_INDEX_URL``,
``PIP_FIND_LINKS``...) into a directory the sandbox may read, and the sandbox
unpacks the wheels offline. Nothing is built, so no package code runs on the
host; wheels that are not ``*-none-any`` are refused.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

_SPEC = re.compile(
    r"^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?"  # name
    r"(?:\[[A-Za-z0-9._,\s-]*\])?"  # extras
    r"(?:\s*(?:===|==|!=|~=|<=|>=|<|>)\s*[A-Za-z0-9.*+!_-]+"  # first specifier
    r"(?:\s*,\s*(?:===|==|!=|~=|<=|>=|<|>)\s*[A-Za-z0-9.*+!_-]+)*)?$"
)
_FLAGS = {"--pre": ["--pre"], "--no-deps": ["--no-deps"], "--no-index": ["--no-index"]}
_FLAGS |= {"-U": [], "--upgrade": []}  # a fresh download is always the newest allowed
_QUIET = {"-q", "--quiet"}
# Where to look, passed on to pip. A --find-links directory is read by the
# host's pip: only its wheels can reach the sandbox, and only pure ones.
_VALUED = {
    "-i": "--index-url",
    "--index-url": "--index-url",
    "--extra-index-url": "--extra-index-url",
    "-f": "--find-links",
    "--find-links": "--find-links",
}


class PipRefused(Exception):
    """Shown to the user as ``ERROR: <message>``."""


@dataclass
class PipRequest:
    args: list[str]  # what followed "%pip install"
    dest: Path  # an empty directory the sandbox may read
    python_version: str  # the sandbox's, e.g. "3.13"
    emit: Callable[[str], Awaitable[None]]  # progress text for the cell's stdout


PipHandler = Callable[[PipRequest], Awaitable[list[Path]]]


def parse_args(args: list[str]) -> tuple[list[str], list[str], bool]:
    """(requirement specs, pip flags, quiet); PipRefused on anything else."""
    specs: list[str] = []
    flags: list[str] = []
    quiet = False
    it = iter(args)
    for arg in it:
        name, eq, value = arg.partition("=")
        if arg in _QUIET:
            quiet = True
        elif arg in _FLAGS:
            flags += _FLAGS[arg]
        elif name in _VALUED:
            value = value if eq else next(it, "")
            if not value:
                raise PipRefused(f"%pip install: option {name} needs a value")
            flags += [_VALUED[name], value]
        elif arg.startswith("-"):
            raise PipRefused(f"%pip install: option {arg} is not supported in the sandbox")
        elif _SPEC.match(arg):
            specs.append(arg)
        else:
            raise PipRefused(
                f"%pip install: {arg!r} is not a package requirement "
                "(URLs, paths and direct references are not supported)"
            )
    if not specs:
        raise PipRefused("%pip install: no package given")
    return specs, flags, quiet


def is_pure(wheel: Path) -> bool:
    return wheel.name.endswith("-none-any.whl")


async def _pip(args: list[str], emit: Callable[[str], Awaitable[None]] | None) -> tuple[int, str]:
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pip",
        "download",
        "--only-binary=:all:",
        "--progress-bar",
        "off",
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=env,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    try:
        async for raw in proc.stdout:
            line = raw.decode(errors="replace")
            lines.append(line)
            if emit is not None:
                await emit(line)
        return await proc.wait(), "".join(lines)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def default_pip_handler(req: PipRequest) -> list[Path]:
    specs, flags, quiet = parse_args(req.args)
    target = ["--python-version", req.python_version, *flags]
    code, output = await _pip(
        [*target, "--platform", "any", "--dest", str(req.dest), *specs],
        None if quiet else req.emit,
    )
    if code != 0:
        await _diagnose(req, specs, target, output)
    wheels = sorted(req.dest.glob("*.whl"))
    impure = [w.name for w in wheels if not is_pure(w)]
    if impure:
        raise PipRefused(_impure_message(impure))
    if not wheels:
        raise PipRefused("pip downloaded no wheel")
    return wheels


def _impure_message(names: list[str]) -> str:
    return (
        f"refused {', '.join(names)}: not a pure-Python wheel. Only '*-none-any' wheels "
        "can run in the Pyodide sandbox; packages with compiled code are not supported."
    )


async def _diagnose(req: PipRequest, specs: list[str], target: list[str], output: str) -> None:
    """No pure-Python wheel was found: tell apart "exists, but only compiled"
    from "does not exist", and raise PipRefused either way."""
    probe = req.dest / ".probe"
    probe.mkdir(exist_ok=True)
    try:
        await _pip([*target, "--no-deps", "--dest", str(probe), *specs], None)
        impure = sorted(w.name for w in probe.glob("*.whl") if not is_pure(w))
    finally:
        shutil.rmtree(probe, ignore_errors=True)
    if impure:
        raise PipRefused(_impure_message(impure))
    last = [ln.strip() for ln in output.splitlines() if ln.strip()][-2:]
    detail = f": {' '.join(last)}" if last else ""
    raise PipRefused(f"no pure-Python wheel found for {' '.join(specs)}{detail}")

"""Deciding and spawning a boot of the Node host, without an event loop.

Kept free of asyncio (and of everything heavy) so that the kernel can spawn
Node first thing, before it imports ipykernel: Pyodide's boot and the kernel's
own start then overlap. ``PyodideHost.start`` takes a launch over.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import assets
from .node import NODE_ENV, find_node, sandbox_command, unshare_available

log = logging.getLogger(__name__)

MOUNT_POINT = "/home/pyodide/work"
DEFAULT_JS_HEAP_MB = 1024


def pool_setting(env: Mapping[str, str] | None = None) -> bool | None:
    """``ANODE_POOL`` (in ``env``, else ours), the warm pool's switch
    (``pool``): on ("1", "on", "true", "yes"), off, or unset (None). Here,
    not in ``pool``: the kernel reads it first thing, and imports the pool
    only when it is on."""
    value = (os.environ if env is None else env).get("ANODE_POOL", "").strip().lower()
    if not value:
        return None
    return value in ("1", "on", "true", "yes")


@dataclass(frozen=True)
class BootOptions:
    """Everything a boot depends on: a launch made with other options than
    the host's own is not taken over."""

    workdir: Path
    node: str
    cache_dir: Path
    network: bool = False
    use_snapshot: bool = True
    js_heap_mb: int = DEFAULT_JS_HEAP_MB
    node_args: tuple[str, ...] = ()

    @classmethod
    def resolved(
        cls, workdir: Path, node: str | None = None, cache_dir: Path | None = None
    ) -> BootOptions:
        """Paths resolved and Node found one way for every caller, so that a
        launch and the host meant to take it over compare equal."""
        return cls(
            Path(workdir).resolve(),
            find_node(node),
            Path(cache_dir or assets.default_cache_dir()).resolve(),
        )


LOCK_NAME = ".owner"
LEGACY_AGE_S = 24 * 3600  # an unlocked directory (older versions) is kept this long


@dataclass
class PipDir:
    """A directory one runtime owns: where the host puts the wheels it
    downloads for ``%pip`` (one per boot), or the empty directory a pooled
    runtime's sandbox names (``pool``).

    Its owner holds a lock on it while it lives: a directory whose lock is
    free was left by a process that was killed (nobody removed it), and the
    next launch removes it."""

    path: Path
    lock_fd: int | None

    @classmethod
    def create(cls, root: Path) -> PipDir:
        root.mkdir(parents=True, exist_ok=True)
        sweep_pip_dirs(root)
        name = uuid.uuid4().hex
        # The lock file gets its name only once locked, so that no sweep
        # (in another process, or thread) ever finds it unlocked.
        tmp = root / f".new-{name}"
        tmp.mkdir()
        fd = os.open(tmp / f"{LOCK_NAME}.tmp", os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.rename(tmp / f"{LOCK_NAME}.tmp", tmp / LOCK_NAME)
        tmp.rename(root / name)
        return cls(root / name, fd)

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        if self.lock_fd is not None:
            os.close(self.lock_fd)
            self.lock_fd = None


def sweep_pip_dirs(root: Path) -> None:
    """Remove the pip directories whose owner is gone."""
    now = time.time()
    for d in root.iterdir():
        try:
            fd = os.open(d / LOCK_NAME, os.O_RDWR)
        except FileNotFoundError:
            with contextlib.suppress(OSError):
                if d.is_dir() and now - d.stat().st_mtime > LEGACY_AGE_S:
                    shutil.rmtree(d, ignore_errors=True)
            continue
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            continue  # held: its host is alive (or still being named)
        else:
            shutil.rmtree(d, ignore_errors=True)
        finally:
            os.close(fd)


@dataclass
class Handed:
    """A runtime the warm pool booted and handed over (``pool.take``): the
    Node process's pipes, the message it sent when ready, and the directory
    its sandbox names, onto which the pool mounted the notebook directory."""

    pid: int
    stdin: int
    stdout: int
    stderr: int
    ready: dict[str, Any]
    mount: PipDir
    conn: socket.socket  # to the pool, the process's parent: its exit status comes here

    def discard(self) -> None:
        with contextlib.suppress(OSError):
            os.killpg(self.pid, signal.SIGKILL)
        for fd in (self.stdin, self.stdout, self.stderr):
            with contextlib.suppress(OSError):
                os.close(fd)
        self.conn.close()
        self.mount.remove()


@dataclass
class Launch:
    """A boot decided, and perhaps spawned, but not yet awaited."""

    options: BootOptions
    t0: float
    cmd: list[str]
    snap_fd: int | None  # the new snapshot's file, given to a cold boot
    snap_path: Path
    snap_tmp: Path | None
    status: str  # what becomes of the snapshot: loaded, created, ...
    isolate: bool  # in a network namespace of its own
    pip: PipDir
    proc: subprocess.Popen[bytes] | None = field(default=None)
    handed: Handed | None = field(default=None)

    @property
    def pass_fds(self) -> list[int]:
        return [self.snap_fd] if self.snap_fd is not None else []

    def close_fds(self) -> None:
        if self.snap_fd is not None:
            os.close(self.snap_fd)
            self.snap_fd = None

    def spawn(self) -> None:
        """Start Node now; the event loop's side adopts the process later."""
        try:
            self.proc = popen(self.cmd, str(assets.JS_DIR), self.pass_fds)
        except BaseException:
            self.discard()
            raise
        finally:
            self.close_fds()

    def discard(self) -> None:
        """Undo a launch that will not be started."""
        self.close_fds()
        if self.handed is not None:
            self.handed.discard()
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(OSError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        if self.snap_tmp is not None:
            self.snap_tmp.unlink(missing_ok=True)
        self.pip.remove()


def popen(cmd: Sequence[str], cwd: str, pass_fds: Sequence[int]) -> subprocess.Popen[bytes]:
    """Spawn as ``NodeProcess.spawn`` does: pipes, no environment, a session of
    its own (so that a kill reaches `unshare` and node alike)."""
    return subprocess.Popen(
        list(cmd),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=cwd,
        env=NODE_ENV,
        pass_fds=tuple(pass_fds),
        start_new_session=True,
    )


def _snapshot_tmp(
    options: BootOptions, snap_path: Path, mode: str
) -> tuple[int | None, Path | None]:
    """A file a cold-booting Node process fills with a new snapshot: it gets
    the open descriptor, never write access to the cache."""
    if not options.use_snapshot or mode != "cold":
        return None, None
    options.cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = snap_path.with_name(f".{snap_path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    return fd, tmp


def plan(options: BootOptions) -> Launch:
    """Decide a boot: from the snapshot if there is a valid one, else cold
    (writing a new snapshot); the sandboxed command line."""
    if not options.workdir.is_dir():
        raise FileNotFoundError(f"workdir is not a directory: {options.workdir}")
    t0 = time.monotonic()
    site = assets.ensure_site(options.cache_dir)
    snap_path = assets.snapshot_path(options.cache_dir)
    status = "disabled"
    mode = "cold"
    if options.use_snapshot:
        if assets.snapshot_valid(snap_path):
            mode, status = "snapshot", "loaded"
        elif snap_path.exists():
            assets.discard_snapshot(snap_path)
            status = "corrupt snapshot discarded; recreated"
        else:
            status = "created"
    snap_fd, snap_tmp = _snapshot_tmp(options, snap_path, mode)
    pip = PipDir.create(options.cache_dir / "pip")
    isolate = not options.network and unshare_available()
    if not options.network and not isolate:
        log.warning("unshare -rnm is not available: the sandbox keeps network access")
    config = {
        "pyodideDir": str(assets.PYODIDE_DIR),
        "siteDir": str(site),
        "shellDir": str(assets.SHELL_DIR),
        "workdir": str(options.workdir),
        "mountPoint": MOUNT_POINT,
        "mode": mode,
        "snapshotPath": str(snap_path) if mode == "snapshot" else None,
        "snapshotFd": snap_fd,
        "network": options.network,
        "jsHeapMb": options.js_heap_mb,
    }
    read = [assets.JS_DIR, assets.SHELL_DIR, site, pip.path, options.workdir]
    if mode == "snapshot":
        read.append(snap_path)
    cmd = sandbox_command(
        options.node,
        assets.HOST_SCRIPT,
        json.dumps(config),
        read=read,
        write=[options.workdir],
        isolate_network=isolate,
        extra_args=options.node_args,
    )
    return Launch(options, t0, cmd, snap_fd, snap_path, snap_tmp, status, isolate, pip)

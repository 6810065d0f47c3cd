"""The warm pool: booted, warmed runtimes kept ready for kernels to take.

A kernel that nbclient or papermill starts would otherwise boot Pyodide and
warm it up while the notebook waits. A small per-user service (one per set of
boot options) keeps a runtime booted from the snapshot and warmed, in an empty
directory of its own (what its sandbox may read and write). A kernel that
takes it asks for its notebook directory: the service bind-mounts that
directory onto the empty one inside the runtime's own mount namespace (the
sandbox is unchanged: Node's permission flags name the empty directory, which
now shows the notebook's), hands over the Node process's pipes and its two
directory locks (SCM_RIGHTS), and boots the next one. Each runtime is used
once, by one kernel.

Opt-in: ``ANODE_POOL=1`` (or the kernel's ``warm_pool`` option). The
service is started by the first kernel that finds none (that kernel boots its
own runtime as before), and exits after an idle while. Without what it needs
(user and mount namespaces, nsenter, mount) there is no pool: kernels boot
their own runtimes, as before.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from . import assets
from .launch import BootOptions, Handed, Launch, PipDir
from .node import unshare_available

log = logging.getLogger(__name__)

ENV_IDLE = "ANODE_POOL_IDLE"  # seconds the service lives unused
DEFAULT_IDLE_S = 600.0
WARM_S = 0.3  # after ready: its warm-up runs meanwhile (a request cuts it short)
TAKE_TIMEOUT_S = 10.0
MAX_MESSAGE = 1 << 16
SERVICE_MODULE = "anode_ext.runtime.pool_service"
MAX_LOG = 1 << 20  # the service's log starts afresh past this size


@dataclass(frozen=True)
class Tools:
    nsenter: str
    mount: str


def tools() -> Tools | None:
    """What the handover needs, or None (then there is no pool)."""
    nsenter, mount = shutil.which("nsenter"), shutil.which("mount")
    if nsenter is None or mount is None or not unshare_available():
        return None
    return Tools(nsenter, mount)


def eligible(options: BootOptions) -> bool:
    """Only the sandbox's usual shape is pooled: network isolated (so in a
    user namespace, where the mount can be made) and booted from a snapshot."""
    return (
        sys.platform == "linux"
        and not options.network
        and options.use_snapshot
        and tools() is not None
    )


def socket_path(options: BootOptions) -> Path:
    """One service per set of options (all but the workdir) and per version
    of the runtime's files: a kernel never takes a runtime booted otherwise."""
    from .. import __version__

    fields = dataclasses.asdict(dataclasses.replace(options, workdir=Path("/")))
    key = json.dumps(
        [fields, __version__, assets.snapshot_path(options.cache_dir).name],
        default=str,
        sort_keys=True,
    )
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return options.cache_dir / "pool" / f"{digest}.sock"


# ---------------------------------------------------------------- client ----


def connect(path: Path, start: Callable[[], None]) -> socket.socket | None:
    """A connection to the service at ``path``; None when there is none
    (then ``start`` starts it, for the next taker)."""
    if len(str(path)) > 100:  # AF_UNIX paths are short
        return None
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.settimeout(TAKE_TIMEOUT_S)
    try:
        conn.connect(str(path))
    except OSError:
        conn.close()
        start()
        return None
    return conn


def take(options: BootOptions) -> Launch | None:
    """A warmed runtime for ``options.workdir``, or None (no service, none
    ready, or anything failed: the caller boots its own). A missing service
    is started for the next kernel."""
    if not eligible(options):
        return None
    t0 = time.monotonic()
    conn = connect(socket_path(options), lambda: start_service(options))
    if conn is None:
        return None
    fds: list[int] = []
    try:
        conn.sendall(json.dumps({"workdir": str(options.workdir)}).encode() + b"\n")
        data, fds, _flags, _addr = socket.recv_fds(conn, MAX_MESSAGE, 5)
        msg = json.loads(data)
        if not msg.get("ok") or len(fds) != 5:
            raise RuntimeError(msg.get("reason", "no runtime handed over"))
    except (OSError, ValueError, RuntimeError) as exc:
        log.debug("pool: nothing taken: %s", exc)
        for fd in fds:
            os.close(fd)
        conn.close()
        return None
    stdin, stdout, stderr, pip_lock, mount_lock = fds
    handed = Handed(
        pid=int(msg["pid"]),
        stdin=stdin,
        stdout=stdout,
        stderr=stderr,
        ready=msg["ready"],
        mount=PipDir(Path(msg["mount"]), mount_lock),
        conn=conn,
    )
    return Launch(
        options,
        t0,
        list(msg["cmd"]),
        None,
        assets.snapshot_path(options.cache_dir),
        None,
        "loaded (warm pool)",
        True,
        PipDir(Path(msg["pip"]), pip_lock),
        handed=handed,
    )


def idle_setting() -> float:
    """``ANODE_POOL_IDLE``: seconds a service lives without a request."""
    try:
        return float(os.environ.get(ENV_IDLE, DEFAULT_IDLE_S))
    except ValueError:
        return DEFAULT_IDLE_S


def spawn_service(cmd: list[str], log_path: Path, env: dict[str, str] | None = None) -> None:
    """Start a pool's service in the background (a session of its own, its
    output to ``log_path``, started afresh past MAX_LOG); a second one started
    meanwhile finds the first's lock and exits."""
    with contextlib.suppress(OSError):
        log_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if log_path.exists() and log_path.stat().st_size > MAX_LOG:
            log_path.unlink()
        with open(log_path, "ab") as out:
            subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                start_new_session=True,
                close_fds=True,
                cwd="/",  # not the notebook folder of the kernel that started it
                env=env,
            )


def start_service(options: BootOptions, idle_s: float | None = None) -> None:
    """Start the runtime pool's service for ``options``."""
    config = dataclasses.asdict(options)
    config["idle_s"] = idle_setting() if idle_s is None else idle_s
    cmd = [sys.executable, "-m", SERVICE_MODULE, json.dumps(config, default=str)]
    spawn_service(cmd, options.cache_dir / "pool" / "service.log")

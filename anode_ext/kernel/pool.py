"""The kernel pool: kernel processes started ahead, their imports done.

A kernel that nbclient or papermill starts spends ~0.6 s importing
ipykernel, IPython and ours before it answers anything; ipykernel's own
start is ~0.45 s. With the warm pool on (``ANODE_POOL=1``), the kernel's
provisioner (in the client's process) asks a small per-user service for a
standby kernel instead of spawning one: a process that has imported
everything and waits (``standby``). It gets the kernel's arguments (the
connection file), environment and working directory, and our stdout and
stderr, then starts as a kernel started by the client would, taking its
runtime from the runtime pool (``runtime.pool``). The service boots the next
standby. Each standby serves one kernel, once.

The service stays the kernel's parent and sends its exit status to the
provisioner; the kernel also holds the read end of a pipe whose write end
only the provisioner has, so a client that dies takes its kernels with it,
as ipykernel's parent poller does for a child.

The service runs the kernel command's own Python, and one service serves
one Python and one set of ``PYTHON*`` variables (what the imports depend
on); anything else falls back to an ordinary launch.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..runtime.pool import connect, spawn_service

log = logging.getLogger(__name__)

KERNEL_MODULE = "anode_ext.kernel"
SERVICE_MODULE = "anode_ext.kernel.pool_service"
STANDBY_MODULE = "anode_ext.kernel.standby"
# Never kept in the long-lived service (nor its standbys' environment): a
# notebook's credential and the client's own process.
PRIVATE = ("ANODE_KERNEL_CREDENTIAL", "ANODE_NOTEBOOK_ID", "ANODE_SERVER_URL", "JPY_")


def kernel_args(cmd: list[str], launch: Mapping[str, Any]) -> list[str] | None:
    """The kernel's own arguments when ``cmd`` is our kernel's usual launch
    and nothing asks for what a handed-over process cannot do (pipes of its
    own, an independent kernel); else None."""
    if sys.platform != "linux" or len(cmd) < 3 or cmd[1:3] != ["-m", KERNEL_MODULE]:
        return None
    if cmd[3:4] == ["install"]:
        return None
    if any(launch.get(k) is not None for k in ("stdin", "stdout", "stderr")):
        return None
    if launch.get("independent"):
        return None
    return cmd[3:]


def socket_path(python: str, env: Mapping[str, str]) -> Path:
    """One service per Python, ``PYTHON*`` variables and version of ours.
    The Python as named, not its symlink's target: a virtualenv's python is
    a link to the base interpreter, and each venv has its own packages."""
    from .. import __version__

    imports = {k: v for k, v in env.items() if k.startswith("PYTHON")}
    key = json.dumps([os.path.abspath(python), imports, __version__], sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    cache = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "anode" / "pool" / f"kernel-{digest}.sock"


def service_env(env: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if not k.startswith(PRIVATE)}


class PooledKernel:
    """A handed-over kernel, as ``subprocess.Popen`` looks to jupyter_client's
    provisioner: ``pid``, ``poll``, ``wait``, signals."""

    stdin = stdout = stderr = None

    def __init__(self, pid: int, conn: socket.socket, alive: int, buf: bytes = b"") -> None:
        self.pid = pid
        self.returncode: int | None = None
        self._conn = conn
        self._alive = alive  # the pipe's write end: closed, the kernel exits
        self._buf = bytearray(buf)
        self._pidfd: int | None = None
        with contextlib.suppress(OSError, AttributeError):
            self._pidfd = os.pidfd_open(pid)

    def poll(self) -> int | None:
        if self.returncode is None:
            self._read(0)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.returncode is None:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise subprocess.TimeoutExpired(["anode kernel", str(self.pid)], timeout or 0)
            self._read(1.0 if left is None else min(left, 1.0))
        return self.returncode

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:
            if self._pidfd is not None:
                signal.pidfd_send_signal(self._pidfd, signum)
            else:
                os.kill(self.pid, signum)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def _read(self, timeout: float) -> None:
        if not select.select([self._conn], [], [], timeout)[0]:
            return
        data = self._conn.recv(4096)
        self._buf += data
        self._parse()
        if self.returncode is None and not data:
            # The service is gone (it never leaves a kernel it handed over
            # unless killed): the status is lost; the process may linger.
            if self._pidfd is None or select.select([self._pidfd], [], [], 0)[0]:
                self._ended(-1)
            else:
                time.sleep(min(timeout, 0.1))

    def _parse(self) -> None:
        while b"\n" in self._buf and self.returncode is None:
            line, _, rest = bytes(self._buf).partition(b"\n")
            self._buf = bytearray(rest)
            with contextlib.suppress(ValueError):
                msg = json.loads(line)
                if "returncode" in msg:
                    self._ended(int(msg["returncode"]))

    def _ended(self, returncode: int) -> None:
        self.returncode = returncode
        self._conn.close()
        for fd in (self._alive, self._pidfd):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._alive = -1
        self._pidfd = None


def take(cmd: list[str], launch: Mapping[str, Any]) -> PooledKernel | None:
    """A standby kernel started with ``cmd``'s arguments and ``launch``'s
    ``env`` and ``cwd`` (jupyter_client's launch arguments), or None (not
    eligible, no service, none ready, anything failed: launch as usual). A
    missing service is started for the next kernel."""
    args = kernel_args(cmd, launch)
    if args is None:
        return None
    env = dict(launch.get("env") or os.environ)
    conn = connect(socket_path(cmd[0], env), lambda: start_service(cmd[0], env))
    if conn is None:
        return None
    env["JPY_PARENT_PID"] = str(os.getpid())  # as jupyter_client's launch sets it
    cwd = str(Path(launch.get("cwd") or os.getcwd()).resolve())
    read_end, alive = os.pipe()
    try:
        request = {"argv": args, "cwd": cwd, "env": env}
        payload = json.dumps(request).encode() + b"\n"
        # Our descriptors 1 and 2, as a spawned kernel would inherit them.
        socket.send_fds(conn, [payload], [1, 2, read_end])
        os.close(read_end)
        read_end = -1
        reply, rest = _read_line(conn)
        msg = json.loads(reply)
        if not msg.get("ok"):
            raise RuntimeError(msg.get("reason", "no kernel handed over"))
    except (OSError, ValueError, RuntimeError) as exc:
        log.debug("kernel pool: nothing taken: %s", exc)
        for fd in (read_end, alive):
            if fd >= 0:
                os.close(fd)
        conn.close()
        return None
    conn.settimeout(None)
    kernel = PooledKernel(int(msg["pid"]), conn, alive, rest)
    kernel._parse()  # an exit status that came with the reply
    return kernel


def _read_line(conn: socket.socket) -> tuple[bytes, bytes]:
    """The first line (or all, if the service closed without one) and what followed."""
    buf = bytearray()
    while b"\n" not in buf:
        data = conn.recv(4096)
        if not data:
            return bytes(buf), b""
        buf += data
    line, _, rest = bytes(buf).partition(b"\n")
    return line, rest


def start_service(python: str, env: Mapping[str, str]) -> None:
    """Start the kernel pool's service for ``python`` and ``env``'s key."""
    path = socket_path(python, env)
    cmd = [python, "-m", SERVICE_MODULE, str(path)]
    spawn_service(cmd, path.with_suffix(".log"), service_env(env))

"""The warm pool's service (see ``pool``): one per user and set of boot
options, run as ``python -m anode_ext.runtime.pool_service OPTIONS_JSON``."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .launch import BootOptions, Launch, PipDir, plan
from .pool import DEFAULT_IDLE_S, TAKE_TIMEOUT_S, WARM_S, socket_path, tools
from .pool_base import PoolService

log = logging.getLogger(__name__)


@dataclass
class _Booted:
    launch: Launch  # spawned
    mount: PipDir
    ready: dict[str, Any]

    @property
    def proc(self) -> subprocess.Popen[bytes]:
        assert self.launch.proc is not None
        return self.launch.proc


def _read_line(fd: int, deadline: float) -> bytes:
    """One line, a byte at a time: what follows it stays in the pipe for
    the kernel that takes the process."""
    out = bytearray()
    while not out.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise TimeoutError("the runtime did not get ready in time")
        b = os.read(fd, 1)
        if not b:
            raise EOFError("the runtime exited while booting")
        out += b
    return bytes(out)


class Service(PoolService[_Booted]):
    """Keeps ``size`` warmed runtimes for one set of boot options."""

    name = "runtime"

    def __init__(
        self, options: BootOptions, *, size: int = 1, idle_s: float = DEFAULT_IDLE_S
    ) -> None:
        super().__init__(socket_path(options), size=size, idle_s=idle_s)
        self.options = options
        self.tools = tools()

    def usable(self) -> str | None:
        return None if self.tools is not None else "namespaces, nsenter or mount missing"

    def boot(self) -> _Booted | None:
        mount = PipDir.create(self.options.cache_dir / "pool" / "work")
        try:
            launch = plan(dataclasses.replace(self.options, workdir=mount.path))
        except BaseException:
            mount.remove()
            raise
        if launch.status != "loaded":  # no snapshot yet: a kernel's own boot makes it
            launch.discard()
            mount.remove()
            return None
        try:
            launch.spawn()
            assert launch.proc is not None and launch.proc.stdout is not None
            line = _read_line(launch.proc.stdout.fileno(), time.monotonic() + 120)
            ready = json.loads(line)
            if ready.get("type") != "ready" or ready.get("snapshot_fallback"):
                raise RuntimeError(f"unexpected boot message: {line[:200]!r}")
            self._stop.wait(WARM_S)
        except BaseException:
            launch.discard()
            mount.remove()
            raise
        return _Booted(launch, mount, ready)

    def discard(self, item: _Booted) -> None:
        item.launch.discard()
        item.mount.remove()

    def check(self, request: dict[str, Any], fds: list[int]) -> None:
        """{"workdir": path}: the notebook's directory, to mount."""
        workdir = Path(request["workdir"]).resolve()
        if not workdir.is_dir():
            raise ValueError(f"not a directory: {workdir}")
        if fds:
            raise ValueError("no descriptors expected")

    def describe(self, request: dict[str, Any]) -> str:
        return f" for {Path(request['workdir']).resolve()}"

    def hand_over(
        self, conn: socket.socket, b: _Booted, request: dict[str, Any], fds: list[int]
    ) -> None:
        workdir = Path(request["workdir"]).resolve()
        proc = b.proc
        assert self.tools is not None
        assert proc.stdin and proc.stdout and proc.stderr and b.launch.pip.lock_fd is not None
        assert b.mount.lock_fd is not None
        # Inside the runtime's user and mount namespaces (ours, made by
        # `unshare`): the notebook directory shows through the empty one
        # there only; nothing changes outside.
        subprocess.run(
            [
                self.tools.nsenter,
                f"--target={proc.pid}",
                "--user",
                "--mount",
                "--preserve-credentials",
                self.tools.mount,
                "--bind",
                str(workdir),
                str(b.mount.path),
            ],
            check=True,
            capture_output=True,
            timeout=TAKE_TIMEOUT_S,
        )
        msg = {
            "ok": True,
            "pid": proc.pid,
            "ready": b.ready,
            "pip": str(b.launch.pip.path),
            "mount": str(b.mount.path),
            "cmd": b.launch.cmd,
        }
        handed = [
            proc.stdin.fileno(),
            proc.stdout.fileno(),
            proc.stderr.fileno(),
            b.launch.pip.lock_fd,
            b.mount.lock_fd,
        ]
        socket.send_fds(conn, [json.dumps(msg).encode()], handed)
        # The kernel owns them now: our copies go (the locks stay held by its).
        for f in (proc.stdin, proc.stdout, proc.stderr):
            f.close()
        for owned in (b.launch.pip, b.mount):
            assert owned.lock_fd is not None
            os.close(owned.lock_fd)
            owned.lock_fd = None


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s anode-pool %(message)s")
    config = json.loads(argv[0])
    idle_s = float(config.pop("idle_s", DEFAULT_IDLE_S))
    for key in ("workdir", "cache_dir"):
        config[key] = Path(config[key])
    config["node_args"] = tuple(config["node_args"])
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    return Service(BootOptions(**config), idle_s=idle_s).run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

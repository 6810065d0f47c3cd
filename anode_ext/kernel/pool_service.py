"""The kernel pool's service (see ``pool``): one per user, Python and
``PYTHON*`` variables, run as ``python -m anode_ext.kernel.pool_service SOCKET``."""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..runtime.pool import idle_setting
from ..runtime.pool_base import PoolService, read_request
from .pool import STANDBY_MODULE

log = logging.getLogger(__name__)

READY_TIMEOUT_S = 120.0
FDS = 3  # the kernel's stdout, stderr, and the read end of the taker's pipe


@dataclass
class _Standby:
    proc: subprocess.Popen[bytes]
    chan: socket.socket  # ours of the pair: the request goes through it


class KernelService(PoolService[_Standby]):
    """Keeps ``size`` standby kernels of this Python."""

    name = "kernel"

    def boot(self) -> _Standby:
        ours, theirs = socket.socketpair()
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", STANDBY_MODULE, str(theirs.fileno())],
                pass_fds=[theirs.fileno()],
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # a process group of its own, as a launched kernel's
                cwd="/",
            )
        finally:
            theirs.close()
        ours.settimeout(READY_TIMEOUT_S)
        try:
            line = ours.makefile("rb").readline()
            if json.loads(line or b"{}").get("type") != "ready":
                raise RuntimeError(f"the standby kernel did not get ready: {line[:200]!r}")
            self._stop.wait(0.1)  # its last imports' garbage collected
        except BaseException:
            proc.kill()
            proc.wait()
            ours.close()
            raise
        ours.settimeout(None)
        return _Standby(proc, ours)

    def discard(self, item: _Standby) -> None:
        item.chan.close()  # the standby reads the end of its pair, and exits
        try:
            item.proc.wait(5)
        except subprocess.TimeoutExpired:
            item.proc.kill()
            item.proc.wait()

    def check(self, request: dict[str, Any], fds: list[int]) -> None:
        """{"argv": [...], "cwd": dir, "env": {...}} and three descriptors."""
        argv, env = request["argv"], request["env"]
        if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
            raise ValueError("argv: a list of strings")
        if not isinstance(env, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in env.items()
        ):
            raise ValueError("env: strings to strings")
        if not Path(request["cwd"]).is_dir():
            raise ValueError(f"not a directory: {request['cwd']}")
        if len(fds) != FDS:
            raise ValueError(f"{FDS} descriptors expected (stdout, stderr, a pipe), got {len(fds)}")

    def describe(self, request: dict[str, Any]) -> str:
        return f" in {request['cwd']}"

    def hand_over(
        self, conn: socket.socket, item: _Standby, request: dict[str, Any], fds: list[int]
    ) -> None:
        item.chan.settimeout(10.0)
        try:
            socket.send_fds(item.chan, [json.dumps(request).encode() + b"\n"], fds)
            # It says whether it could take the environment and directory.
            data, _ = read_request(item.chan)
            answer = json.loads(data or b"{}")
        finally:
            item.chan.close()
        if not answer.get("ok"):
            raise RuntimeError(answer.get("reason", "the standby kernel did not start"))
        conn.sendall(json.dumps({"ok": True, "pid": item.proc.pid}).encode() + b"\n")


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s anode-kernel-pool %(message)s")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with contextlib.suppress(KeyboardInterrupt):
        return KernelService(Path(argv[0]), idle_s=idle_setting()).run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

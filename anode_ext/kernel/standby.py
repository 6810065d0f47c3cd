"""A standby kernel (see ``pool``): ``python -m anode_ext.kernel.standby FD``.

It imports what a kernel needs, says so on FD (its end of a socket pair
with the pool's service), and waits. Taken, it gets the kernel's arguments,
environment and working directory, with the taker's stdout, stderr and the
read end of its pipe; it answers, then runs as ``python -m anode_ext.kernel``
would, its runtime from the runtime pool when that is on. The service
closing its end first means "not needed": it exits.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading


def _watch(alive: int) -> None:
    """The taker's end of the pipe closes when it exits, however it exits."""

    def run() -> None:
        while True:
            try:
                if not os.read(alive, 1):
                    break
            except InterruptedError:
                continue
            except OSError:
                break
        os._exit(1)

    threading.Thread(target=run, name="anode-taker-watch", daemon=True).start()


def main(fd: int) -> int:
    chan = socket.socket(fileno=fd)
    from ipykernel.kernelapp import IPKernelApp

    from ..runtime.pool_base import close_fds, read_request
    from . import early
    from .kernel import AnodeKernel

    chan.sendall(json.dumps({"type": "ready"}).encode() + b"\n")
    try:
        data, fds = read_request(chan)
    except OSError:
        return 0
    if not data:
        return 0  # discarded
    try:
        request = json.loads(data)
        stdout, stderr, alive = fds
        os.chdir(request["cwd"])
        argv = [str(a) for a in request["argv"]]
        env = {str(k): str(v) for k, v in request["env"].items()}
    except (ValueError, KeyError, TypeError, OSError) as exc:
        close_fds(fds)
        chan.sendall(json.dumps({"ok": False, "reason": str(exc)}).encode() + b"\n")
        return 1
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(stdout, 1)
    os.dup2(stderr, 2)
    close_fds([stdout, stderr])
    os.environ.clear()
    os.environ.update(env)
    _watch(alive)
    chan.sendall(json.dumps({"ok": True}).encode() + b"\n")
    chan.close()
    early.launch()
    # ipykernel read JPY_PARENT_PID when imported, before the taker's
    # environment was ours: its parent, as for a kernel the taker spawned.
    parent = env.get("JPY_PARENT_PID", "")
    if parent.isdigit():
        argv = [f"--IPKernelApp.parent_handle={parent}", *argv]
    # As __main__ runs it (see there).
    IPKernelApp.launch_instance(argv=argv, kernel_class=AnodeKernel, outstream_class=None)
    return 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1])))

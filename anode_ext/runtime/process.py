"""One Node host process: JSON lines both ways, requests matched by id.

This is the one place that notices the process ended (exit, signal, the
memory watchdog, a broken protocol) and turns that into ``HostDied`` for every
pending call, so that no caller ever waits on a dead process.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import signal
import subprocess
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from .launch import Handed
from .node import NODE_ENV
from .protocol import HostDied

log = logging.getLogger(__name__)

STREAM_LIMIT = 512 * 1024 * 1024  # longest protocol line (a big image output)


class Request:
    """The messages the host sends for one request id, in order."""

    def __init__(self, rid: int) -> None:
        self.id = rid
        self.queue: asyncio.Queue[dict[str, Any] | HostDied] = asyncio.Queue()

    async def next(self) -> dict[str, Any]:
        item = await self.queue.get()
        if isinstance(item, HostDied):
            raise item
        return item


def _kill(pid: int) -> None:
    with contextlib.suppress(OSError):
        os.killpg(pid, signal.SIGKILL)


# Background JIT threads run at this niceness (see lower_compiler_priority).
COMPILER_NICENESS = 10


_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


class ResidentMemory:
    """A process's resident memory (Linux), from its ``/proc/PID/statm`` kept
    open: a look is one pread (~16 us here), where reading ``status`` afresh
    took ~0.3 ms, ten times a second on the kernel's event loop."""

    def __init__(self, pid: int) -> None:
        try:
            self._fd: int | None = os.open(f"/proc/{pid}/statm", os.O_RDONLY)
        except OSError:
            self._fd = None

    def mb(self) -> int | None:
        """In MB; None if unknown (not Linux, or the process is gone)."""
        if self._fd is None:
            return None
        try:
            pages = int(os.pread(self._fd, 128, 0).split()[1])
        except (OSError, ValueError, IndexError):
            return None
        return pages * _PAGE_BYTES // (1024 * 1024)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def rss_mb(pid: int) -> int | None:
    """Resident memory of a process in MB (Linux), None if unknown."""
    rss = ResidentMemory(pid)
    try:
        return rss.mb()
    finally:
        rss.close()


def lower_compiler_priority(pid: int, niceness: int = COMPILER_NICENESS) -> None:
    """Lower the priority of V8's background threads in the host (Linux).

    They compile hot WebAssembly with TurboFan, and go on doing so for the
    first few hundred cells after a boot (~10 ms of CPU a cell, measured).
    At normal priority that work competes with the cell's own thread, the
    kernel and its client; niced, it takes what CPU is left over."""
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                if f.read().strip() != "V8Worker":
                    continue
            os.setpriority(os.PRIO_PROCESS, int(tid), niceness)
        except (OSError, ValueError):
            continue  # the thread ended, or not ours to change


class _Writer(Protocol):
    def write(self, data: bytes) -> None: ...
    def is_closing(self) -> bool: ...
    def close(self) -> None: ...


class _Proc(Protocol):
    """What NodeProcess uses of asyncio's Process (and of an adopted Popen)."""

    @property
    def pid(self) -> int: ...
    @property
    def returncode(self) -> int | None: ...
    @property
    def stdin(self) -> _Writer | None: ...
    @property
    def stdout(self) -> asyncio.StreamReader | None: ...
    @property
    def stderr(self) -> asyncio.StreamReader | None: ...
    async def wait(self) -> int: ...


async def _streams(
    stdin: Any, stdout: Any, stderr: Any
) -> tuple[_Writer, asyncio.StreamReader, asyncio.StreamReader]:
    """A process's pipes (files) as asyncio's Process has them."""
    loop = asyncio.get_running_loop()
    out = asyncio.StreamReader(limit=STREAM_LIMIT)
    err = asyncio.StreamReader(limit=STREAM_LIMIT)
    for pipe, reader in ((stdout, out), (stderr, err)):
        await loop.connect_read_pipe(functools.partial(asyncio.StreamReaderProtocol, reader), pipe)
    transport, _ = await loop.connect_write_pipe(asyncio.Protocol, stdin)
    return transport, out, err


class _Adopted:
    """A ``subprocess.Popen`` driven from the event loop like asyncio's
    Process: its pipes become streams, its exit is seen through a pidfd."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self._popen = proc
        self.stdin: _Writer | None = None
        self.stdout: asyncio.StreamReader | None = None
        self.stderr: asyncio.StreamReader | None = None
        self._exit: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    @property
    def pid(self) -> int:
        return self._popen.pid

    @property
    def returncode(self) -> int | None:
        return self._popen.returncode

    async def connect(self) -> None:
        loop = asyncio.get_running_loop()
        p = self._popen
        assert p.stdin is not None and p.stdout is not None and p.stderr is not None
        self.stdin, self.stdout, self.stderr = await _streams(p.stdin, p.stdout, p.stderr)
        try:
            fd = os.pidfd_open(p.pid)
        except (AttributeError, OSError):  # no pidfd: a thread waits instead
            task = asyncio.ensure_future(asyncio.to_thread(p.wait))
            task.add_done_callback(lambda t: self._exited(t.result()))
            return

        def on_exit() -> None:
            loop.remove_reader(fd)
            os.close(fd)
            self._exited(p.wait())

        loop.add_reader(fd, on_exit)

    def _exited(self, rc: int) -> None:
        if not self._exit.done():
            self._exit.set_result(rc)

    async def wait(self) -> int:
        return await asyncio.shield(self._exit)


class _Handed:
    """A runtime the warm pool handed over, driven like asyncio's Process:
    its pipes become streams; the pool, its parent, sends its exit status."""

    def __init__(self, handed: Handed) -> None:
        self._handed = handed
        self.stdin: _Writer | None = None
        self.stdout: asyncio.StreamReader | None = None
        self.stderr: asyncio.StreamReader | None = None
        self.returncode: int | None = None
        self.status_lost = False  # the pool went before the process
        self._exit: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._status: asyncio.Future[None] | None = None

    @property
    def pid(self) -> int:
        return self._handed.pid

    async def connect(self) -> None:
        h = self._handed
        self.stdin, self.stdout, self.stderr = await _streams(
            os.fdopen(h.stdin, "wb", 0), os.fdopen(h.stdout, "rb", 0), os.fdopen(h.stderr, "rb", 0)
        )
        self._status = asyncio.ensure_future(self._read_status())

    async def _read_status(self) -> None:
        loop = asyncio.get_running_loop()
        conn = self._handed.conn
        conn.setblocking(False)
        buf = b""
        with contextlib.suppress(OSError):
            while not buf.endswith(b"\n"):
                chunk = await loop.sock_recv(conn, 4096)
                if not chunk:
                    break
                buf += chunk
        conn.close()
        try:
            rc = int(json.loads(buf)["returncode"])
        except (ValueError, KeyError, TypeError):
            # The pool is gone: the process's end is all we can see.
            self.status_lost = True
            await _gone(self.pid)
            rc = -signal.SIGKILL  # unknown: the death reason says so (status_lost)
        self.returncode = rc
        if not self._exit.done():
            self._exit.set_result(rc)

    async def wait(self) -> int:
        return await asyncio.shield(self._exit)


async def _gone(pid: int) -> None:
    """Wait for a process that is not our child to end (pidfd, else polling)."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    except (AttributeError, OSError):
        while os.path.exists(f"/proc/{pid}"):
            await asyncio.sleep(0.2)
        return
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def on_exit() -> None:
        if not done.done():
            done.set_result(None)

    loop.add_reader(fd, on_exit)
    try:
        await done
    finally:
        loop.remove_reader(fd)
        os.close(fd)


class NodeProcess:
    def __init__(self, memory_limit_mb: int) -> None:
        self.memory_limit_mb = memory_limit_mb
        self.proc: _Proc | None = None
        self.ready: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.died: HostDied | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._requests: dict[int, Request] = {}
        self._next_id = 0
        self._stderr_tail: deque[str] = deque(maxlen=30)
        self._fatal: str | None = None
        self._kill_reason: str | None = None
        self._exited = asyncio.Event()
        self._finalizer: weakref.finalize[Any, Any] | None = None
        # Messages of no request: events Python made outside one (a comm
        # callback between requests) and `comms_taken`.
        self.on_unsolicited: Callable[[dict[str, Any]], None] | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None and self.died is None

    async def spawn(self, cmd: Sequence[str], cwd: str, pass_fds: Sequence[int]) -> None:
        # A session of its own: a kill reaches `unshare` and node alike.
        self.proc = await asyncio.create_subprocess_exec(
            *cmd,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=cwd,
            env=NODE_ENV,
            pass_fds=tuple(pass_fds),
            start_new_session=True,
            limit=STREAM_LIMIT,
        )
        self._watch()

    async def adopt(self, proc: subprocess.Popen[bytes]) -> None:
        """Take over a process spawned before the loop ran (``launch.popen``)."""
        await self._take_over(_Adopted(proc))

    async def adopt_handed(self, handed: Handed) -> None:
        """Take over a runtime the warm pool booted: it is ready already."""
        await self._take_over(_Handed(handed))
        lower_compiler_priority(handed.pid)
        if not self.ready.done():
            self.ready.set_result(handed.ready)

    async def _take_over(self, proc: _Adopted | _Handed) -> None:
        """Drive a process we did not spawn here; killed if that fails."""
        self.proc = proc
        try:
            await proc.connect()
        except BaseException:
            _kill(proc.pid)
            raise
        self._watch()

    def _watch(self) -> None:
        assert self.proc is not None
        self._finalizer = weakref.finalize(self, _kill, self.proc.pid)
        self._tasks = [
            asyncio.create_task(self._read_stdout()),
            asyncio.create_task(self._read_stderr()),
            asyncio.create_task(self._watch_memory()),
        ]

    # ------------------------------------------------------------ reading ----

    async def _read_stdout(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        try:
            async for line in self.proc.stdout:
                try:
                    msg = json.loads(line)
                except ValueError:
                    log.warning("host: bad protocol line %r", line[:200])
                    continue
                self._dispatch(msg)
        except (ValueError, asyncio.LimitOverrunError) as exc:
            self.kill(f"protocol error: {exc}")
        finally:
            await self._on_exit()

    def _dispatch(self, msg: dict[str, Any]) -> None:
        kind = msg.get("type")
        if kind == "ready":
            if self.proc is not None:
                lower_compiler_priority(self.proc.pid)
            if not self.ready.done():
                self.ready.set_result(msg)
        elif kind == "fatal":
            self._fatal = str(msg.get("message"))
        else:
            rid = msg.get("id")
            req = self._requests.get(rid) if isinstance(rid, int) else None
            if req is not None:
                req.queue.put_nowait(msg)
            elif (rid is None or kind == "comms_taken") and self.on_unsolicited is not None:
                self.on_unsolicited(msg)
            else:
                log.debug("host: message for no pending request: %s", kind)

    async def _read_stderr(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        async for raw in self.proc.stderr:
            line = raw.decode(errors="replace").rstrip()
            if line:
                self._stderr_tail.append(line)
                log.debug("node: %s", line)

    async def _watch_memory(self) -> None:
        """Wasm memory is outside V8's heap limits: watch the resident size."""
        proc = self.proc
        assert proc is not None
        resident = ResidentMemory(proc.pid)
        try:
            while proc.returncode is None:
                rss = resident.mb()
                if rss is not None and rss > self.memory_limit_mb:
                    self.kill(
                        f"memory limit exceeded: resident memory {rss} MB "
                        f"> {self.memory_limit_mb} MB"
                    )
                    return
                await asyncio.sleep(0.1)
        finally:
            resident.close()

    async def _on_exit(self) -> None:
        assert self.proc is not None
        rc = await self.proc.wait()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._tasks[1]), 2.0)
        died = HostDied(self._death_reason(rc))
        self.died = died
        if self._finalizer is not None:
            self._finalizer.detach()
        for req in self._requests.values():
            req.queue.put_nowait(died)
        if not self.ready.done():
            self.ready.set_exception(died)
        self._exited.set()

    def _death_reason(self, rc: int) -> str:
        parts = []
        if self._kill_reason:
            parts.append(self._kill_reason)
        elif self._fatal:
            parts.append(self._fatal)
        if getattr(self.proc, "status_lost", False):
            parts.append("node ended (its exit status went with the warm pool)")
        elif rc < 0:
            parts.append(f"node was killed by signal {signal.Signals(-rc).name}")
        else:
            parts.append(f"node exited with code {rc}")
        tail = [ln for ln in self._stderr_tail if not ln.startswith("[anode host] starting")]
        if tail and not self._kill_reason and not self._fatal:
            parts.append("last stderr lines:\n" + "\n".join(tail[-8:]))
        return "; ".join(parts)

    # ------------------------------------------------------------ requests ---

    def send(self, msg: dict[str, Any]) -> None:
        if self.died is not None:
            raise self.died
        if self.proc is None or self.proc.stdin is None or self.proc.stdin.is_closing():
            raise HostDied("host not running")
        self.proc.stdin.write(json.dumps(msg).encode() + b"\n")

    def request(self, kind: str, **fields: Any) -> Request:
        """Send a request; its messages arrive on the returned Request."""
        self._next_id += 1
        req = Request(self._next_id)
        self._requests[req.id] = req
        try:
            self.send({"type": kind, "id": req.id, **fields})
        except BaseException:
            del self._requests[req.id]
            raise
        return req

    def done(self, req: Request) -> None:
        self._requests.pop(req.id, None)

    async def call(self, kind: str, **fields: Any) -> dict[str, Any]:
        """A request answered by one reply (complete, inspect, ...)."""
        req = self.request(kind, **fields)
        try:
            while True:
                msg = await req.next()
                if msg["type"] == "reply":
                    return dict(msg["content"])
        finally:
            self.done(req)

    # ------------------------------------------------------------- ending ----

    def kill(self, reason: str) -> None:
        self._kill_reason = self._kill_reason or reason
        if self.proc is not None and self.proc.returncode is None:
            _kill(self.proc.pid)

    async def close(self) -> None:
        """Ask politely, then kill; returns once the process is reaped."""
        proc = self.proc
        if proc is None:
            return
        if proc.returncode is None and self.died is None:
            self._kill_reason = self._kill_reason or "host closed"
            with contextlib.suppress(Exception):
                self.send({"type": "shutdown"})
                assert proc.stdin is not None
                proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 3.0)
        except asyncio.TimeoutError:
            self.kill("host closed")
            await proc.wait()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._exited.wait(), 3.0)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._finalizer is not None:
            self._finalizer.detach()

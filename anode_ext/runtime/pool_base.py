"""A pool's service, whatever it keeps: one per user and key, behind a Unix
socket (mode 0600, same user only), keeping booted processes ready and
handing one to each request. The runtime pool (``pool_service``) and the
kernel pool (``kernel.pool_service``) are its two kinds."""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from .pool import DEFAULT_IDLE_S, MAX_MESSAGE, TAKE_TIMEOUT_S

log = logging.getLogger(__name__)


class _Item(Protocol):
    """What a pool keeps: a process it started."""

    @property
    def proc(self) -> subprocess.Popen[bytes]: ...


T = TypeVar("T", bound=_Item)
MAX_FDS = 8
MAX_REQUEST = 1 << 20


class PoolService(Generic[T]):
    """Keeps ``size`` booted items (processes) ready behind a Unix socket and
    hands one to each request; stays the parent of what it handed over and
    sends its exit status when it ends. A subclass says how an item boots,
    is checked for a request and handed over (the runtime pool here, the
    kernel pool in ``kernel``)."""

    name = "item"

    def __init__(self, path: Path, *, size: int = 1, idle_s: float = DEFAULT_IDLE_S) -> None:
        self.path = path
        self.size = size
        self.idle_s = idle_s
        self._ready: list[T] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._last_use = time.monotonic()
        self._active = 0  # handed over and still running: the service stays

    # -- what a subclass says -----------------------------------------------
    def usable(self) -> str | None:
        """Why this service cannot serve here, or None."""
        return None

    def boot(self) -> T | None:
        """A booted, ready item; None: not possible yet (try again later)."""
        raise NotImplementedError

    def discard(self, item: T) -> None:
        raise NotImplementedError

    def pid(self, item: T) -> int:
        return item.proc.pid

    def check(self, request: dict[str, Any], fds: list[int]) -> None:
        """Refuse a malformed request (ValueError, with the reason)."""

    def hand_over(
        self, conn: socket.socket, item: T, request: dict[str, Any], fds: list[int]
    ) -> None:
        raise NotImplementedError

    def wait(self, item: T) -> int:
        return item.proc.wait()

    def describe(self, request: dict[str, Any]) -> str:
        """What a request is for, in the log."""
        return ""

    # -- the service ---------------------------------------------------------
    def ready_pids(self) -> list[int]:
        """The items waiting to be taken."""
        with self._lock:
            return [self.pid(b) for b in self._ready]

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> int:
        why = self.usable()
        if why is not None:
            log.warning("pool: %s; not serving", why)
            return 1
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        lock_fd = os.open(self.path.with_suffix(".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(lock_fd)
            return 0  # another service serves this key
        self.path.unlink(missing_ok=True)
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(str(self.path))
        os.chmod(self.path, 0o600)
        server.listen(16)
        server.settimeout(1.0)
        booter = threading.Thread(target=self._keep_booted, daemon=True)
        booter.start()
        try:
            while not self._stop.is_set():
                try:
                    conn, _ = server.accept()
                except TimeoutError:
                    with self._lock:
                        idle = self._active == 0
                    if idle and time.monotonic() - self._last_use > self.idle_s:
                        break
                    continue
                self._last_use = time.monotonic()
                threading.Thread(target=self._serve, args=(conn,), daemon=True).start()
        finally:
            self._stop.set()
            self._wake.set()
            self.path.unlink(missing_ok=True)
            server.close()
            booter.join(timeout=30)
            with self._lock:
                left, self._ready = self._ready, []
            for b in left:
                self.discard(b)
            os.close(lock_fd)
        return 0

    # The booter: one item at a time, until `size` wait.
    def _keep_booted(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                full = len(self._ready) >= self.size
            if full:
                self._wake.wait(1.0)
                self._wake.clear()
                continue
            try:
                booted = self.boot()
            except Exception as exc:  # a failed boot: wait, try again
                log.warning("pool: boot failed: %s", exc)
                self._stop.wait(5.0)
                continue
            if booted is None:
                self._stop.wait(2.0)
                continue
            with self._lock:
                self._ready.append(booted)
            log.info("%s %d ready", self.name, self.pid(booted))

    # A request: one JSON line (descriptors with it) -> the item, or {"ok": false}.
    def _serve(self, conn: socket.socket) -> None:
        fds: list[int] = []
        with conn:
            conn.settimeout(TAKE_TIMEOUT_S)
            try:
                cred = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
                if int.from_bytes(cred[4:8], sys.byteorder) != os.getuid():
                    return
                data, fds = read_request(conn)
                request = json.loads(data)
                if not isinstance(request, dict):
                    raise ValueError("a request is a JSON object")
                self.check(request, fds)
            except (OSError, ValueError, KeyError, TypeError) as exc:
                close_fds(fds)
                self._refuse(conn, str(exc))
                return
            with self._lock:
                booted = self._ready.pop(0) if self._ready else None
                self._active += booted is not None
            self._wake.set()
            try:
                if booted is None:
                    self._refuse(conn, f"no {self.name} ready")
                    return
                try:
                    self.hand_over(conn, booted, request, fds)
                except Exception as exc:
                    self.discard(booted)
                    detail = getattr(exc, "stderr", b"") or b""
                    self._refuse(conn, f"handover failed: {exc} {detail.decode(errors='replace')}")
                    return
                finally:
                    close_fds(fds)
                log.info("%s %d handed over%s", self.name, self.pid(booted), self.describe(request))
                rc = self.wait(booted)  # we stay its parent: its exit status goes back
                with contextlib.suppress(OSError):
                    conn.sendall(json.dumps({"returncode": rc}).encode() + b"\n")
            finally:
                with self._lock:
                    self._active -= booted is not None
                self._last_use = time.monotonic()

    def _refuse(self, conn: socket.socket, reason: str) -> None:
        with contextlib.suppress(OSError):
            conn.sendall(json.dumps({"ok": False, "reason": reason}).encode())


def read_request(conn: socket.socket) -> tuple[bytes, list[int]]:
    """A JSON line; the descriptors sent with its first bytes."""
    data, fds, _flags, _addr = socket.recv_fds(conn, MAX_MESSAGE, MAX_FDS)
    buf = bytearray(data)
    while data and not buf.endswith(b"\n"):
        if len(buf) > MAX_REQUEST:
            close_fds(fds)
            raise ValueError("request too long")
        data = conn.recv(MAX_MESSAGE)
        buf += data
    return bytes(buf), list(fds)


def close_fds(fds: list[int]) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)

"""A throwaway PostgreSQL 15 for tests, benchmarks and `make cluster`.

Each instance is its own cluster (initdb into a fresh temporary folder, trust
authentication, a free TCP port on 127.0.0.1) and leaves nothing behind when
stopped. initdb refuses to run as root, so as root the server runs as the
`postgres` user (Debian's package creates it).
"""

from __future__ import annotations

import atexit
import getpass
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

PG_BIN = Path("/usr/lib/postgresql/15/bin")
DATABASE = "anode"


class PostgresError(RuntimeError):
    """PostgreSQL could not be installed, started or used."""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the caller binds it soon after)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts connections there: how a stop is confirmed."""
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def log_tail(path: Path, lines: int = 30) -> str:
    """The end of a process's log, for error messages that say what went wrong."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


def is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def apt_install(package: str) -> None:
    """Debian's package, through apt-get (sudo when not root): what CI machines lack."""
    if shutil.which("apt-get") is None:
        raise PostgresError(f"{package} is missing and there is no apt-get to install it")
    sudo: list[str] = []
    if not is_root():
        if shutil.which("sudo") is None:
            raise PostgresError(f"{package} is missing: install it (apt-get install {package})")
        sudo = ["sudo"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", package]
    for cmd in (["apt-get", "update", "-q"], install):
        print(f"== {' '.join(sudo + cmd)}", file=sys.stderr)
        try:
            subprocess.run([*sudo, *cmd], env=env, check=True, timeout=900)
        except (subprocess.SubprocessError, OSError) as err:
            raise PostgresError(f"could not install {package}: {err}") from None


def ensure_postgres() -> Path:
    """PostgreSQL 15's bin folder, installed from Debian's postgresql-15 when missing."""
    if not (PG_BIN / "initdb").exists():
        apt_install("postgresql-15")
        if not (PG_BIN / "initdb").exists():
            raise PostgresError(f"postgresql-15 is installed but {PG_BIN}/initdb is missing")
    return PG_BIN


def _ensure_postgres_user() -> pwd.struct_passwd:
    """The OS user a root-started server runs as."""
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        subprocess.run(["useradd", "--system", "postgres"], check=True, timeout=60)
        return pwd.getpwnam("postgres")


def _reachable_tmp() -> str:
    """A temp root the postgres user can traverse ($TMPDIR may be under /root)."""
    here = Path(tempfile.gettempdir()).resolve()
    for part in (here, *here.parents):
        if not part.stat().st_mode & 0o001:
            return "/tmp"
    return str(here)


class ThrowawayPostgres:
    """A private PostgreSQL server with a database `anode`, gone after stop()."""

    def __init__(self, bindir: Path | None = None, *, timeout: float = 60.0) -> None:
        self.bindir = bindir
        self.timeout = timeout
        self.port = 0
        self.user = "postgres" if is_root() else getpass.getuser()
        self.base: Path | None = None  # holds data/, the socket and server.log
        self._atexit = False

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{DATABASE}"

    @property
    def data(self) -> Path:
        assert self.base is not None, "not started"
        return self.base / "data"

    @property
    def log(self) -> Path:
        assert self.base is not None, "not started"
        return self.base / "server.log"

    def __enter__(self) -> ThrowawayPostgres:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> ThrowawayPostgres:
        if self.base is not None:
            return self
        if self.bindir is None:
            self.bindir = ensure_postgres()
        self.base = Path(
            tempfile.mkdtemp(prefix="anode-pg-", dir=_reachable_tmp() if is_root() else None)
        )
        atexit.register(self.stop)  # a crashed test run still removes its servers
        self._atexit = True
        try:
            if is_root():
                owner = _ensure_postgres_user()
                os.chown(self.base, owner.pw_uid, owner.pw_gid)
            self._run(
                "initdb", "-D", str(self.data), "-U", self.user, "-A", "trust",
                "-E", "UTF8", "--locale=C", "--no-sync",
                timeout=max(self.timeout, 120),
            )  # fmt: skip
            for attempt in range(3):  # another process may take the free port first
                self.port = free_port()
                try:
                    self._pg_ctl_start()
                    break
                except PostgresError:
                    if attempt == 2 or "already in use" not in log_tail(self.log, 5):
                        raise
            self.psql(f"CREATE DATABASE {DATABASE}", database="postgres")
        except BaseException:
            self.stop()
            raise
        return self

    def _pg_ctl_start(self) -> None:
        options = (
            f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1"
            " -c fsync=on -c max_connections=300"
        )
        self._run(
            "pg_ctl", "start", "-w", "-t", str(int(self.timeout)), "-D", str(self.data),
            "-l", str(self.log), "-o", options,
            timeout=self.timeout + 15,
        )  # fmt: skip

    def stop(self) -> None:
        """A fast shutdown (immediate if that hangs), then the folder removed."""
        if self._atexit:
            atexit.unregister(self.stop)
            self._atexit = False
        if self.base is None:
            return
        if (self.data / "postmaster.pid").exists():
            try:
                self._run("pg_ctl", "stop", "-w", "-t", "30", "-m", "fast", "-D", str(self.data))
            except PostgresError:
                self._kill_postmaster()
        shutil.rmtree(self.base, ignore_errors=True)
        self.base = None

    def _kill_postmaster(self) -> None:
        """SIGQUIT, the postmaster's immediate shutdown, when pg_ctl could not stop it."""
        try:
            pid = int((self.data / "postmaster.pid").read_text().split()[0])
            os.kill(pid, signal.SIGQUIT)
        except (OSError, ValueError, IndexError):
            return
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except OSError:
                return
            time.sleep(0.1)

    def psql(self, sql: str, *, database: str = DATABASE) -> str:
        """Run SQL with the psql binary; its unaligned, tuples-only output."""
        assert self.bindir is not None and self.base is not None, "not started"
        cmd = [
            str(self.bindir / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
            "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user, "-d", database, "-c", sql,
        ]  # fmt: skip
        try:
            done = subprocess.run(
                cmd, capture_output=True, text=True, timeout=self.timeout, env=_clean_env()
            )
        except subprocess.TimeoutExpired:
            raise PostgresError(f"psql timed out after {self.timeout} s: {sql}") from None
        except OSError as err:
            raise PostgresError(f"psql could not run: {err}") from None
        if done.returncode != 0:
            raise PostgresError(f"psql failed ({sql}): {done.stderr.strip()}")
        return done.stdout

    def _run(self, tool: str, *args: str, timeout: float = 60.0) -> None:
        """One of the server's tools, as the postgres user when we are root."""
        assert self.bindir is not None and self.base is not None
        cmd: Sequence[str] = [str(self.bindir / tool), *args]
        if is_root():
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        try:
            done = subprocess.run(
                cmd,
                cwd=self.base,  # the postgres user may not enter ours
                env=_clean_env(),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            raise PostgresError(
                f"{tool} timed out after {timeout} s; server log:\n{log_tail(self.log)}"
            ) from None
        except OSError as err:
            raise PostgresError(f"{tool} could not run: {err}") from None
        if done.returncode != 0:
            output = (done.stdout + done.stderr).strip()
            raise PostgresError(
                f"{tool} failed ({done.returncode}): {output}\nserver log:\n{log_tail(self.log)}"
            )


def _clean_env() -> dict[str, str]:
    """Ours without PG* variables, which would point the tools at another server."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PG")}


def main() -> int:
    """`python -m anode_ext.pgserver`: one server until Ctrl-C."""
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started ignoring it
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        with ThrowawayPostgres() as pg:
            print(pg.url, flush=True)
            print("== PostgreSQL is running; Ctrl-C stops it and removes its data", file=sys.stderr)
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        return 0
    except PostgresError as err:
        print(f"anode pgserver: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

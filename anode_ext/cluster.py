"""`make cluster`: JupyterLab replicas on one PostgreSQL, behind HAProxy.

The scale-out demo: every replica serves every notebook from the shared
database, so any of them can take a request. Kernels are the exception (their
ZMQ credentials and websockets live in one replica's memory), hence HAProxy's
cookie keeps a browser on the replica it first reached. The launchers here are
the ones end-to-end tests use, so the demo and the tests run the same cluster.
"""

from __future__ import annotations

import argparse
import base64
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from .cli import UsageError
from .demo import ensure_kernelspec, write_demo_notebook
from .pgserver import ThrowawayPostgres, apt_install, free_port, is_root, log_tail

HAPROXY = Path("/usr/sbin/haproxy")


@dataclass
class Proc:
    """A child process on a port, with the file its output goes to."""

    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM (a Jupyter server then shuts its kernels down), SIGKILL if it lingers."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        try:  # whatever it left in its session
            os.killpg(self.proc.pid, signal.SIGKILL)
        except OSError:
            pass


def _spawn(name: str, port: int, cmd: Sequence[str], log: Path) -> Proc:
    """Its own session: the terminal's Ctrl-C reaches us, and we stop children in order."""
    with log.open("ab") as out:
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    return Proc(name, port, proc, log)


def wait_ready(p: Proc, path: str = "/api", timeout: float = 180.0) -> None:
    """Until `GET path` answers 200; the log's tail in the error if the process dies first."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(p.url + path, timeout=5) as resp:
                if resp.status == 200:
                    return
        except (OSError, urllib.error.HTTPError):
            pass
        if p.proc.poll() is not None:
            raise RuntimeError(
                f"{p.name} exited ({p.proc.returncode}); {p.log}:\n{log_tail(p.log)}"
            )
        if time.monotonic() > deadline:
            raise RuntimeError(f"{p.name} not ready after {timeout} s; {p.log}:\n{log_tail(p.log)}")
        time.sleep(0.3)


def write_cookie_secret(path: Path) -> Path:
    """One secret for all replicas: a login cookie from one is valid on the others."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(base64.encodebytes(secrets.token_bytes(32)))
    return path


def replica_command(
    port: int, root_dir: Path, token: str, cookie_secret_file: Path, database_url: str
) -> list[str]:
    cmd = [
        sys.executable, "-m", "jupyterlab", "--no-browser",
        f"--port={port}", "--ServerApp.port_retries=0", "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.root_dir={root_dir}",
        "--ServerApp.jpserver_extensions=anode_ext=True",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.cookie_secret_file={cookie_secret_file}",
        f"--AnodeApp.database_url={database_url}",
    ]  # fmt: skip
    if is_root():
        cmd.append("--allow-root")
    return cmd


def start_replicas(
    n: int,
    database_url: str,
    root_dir: Path,
    *,
    token: str,
    cookie_secret_file: Path,
    log_dir: Path,
    extra_args: Sequence[str] = (),
    timeout: float = 180.0,
) -> list[Proc]:
    """n JupyterLab servers on one database, started together, returned once all answer."""
    replicas: list[Proc] = []
    try:
        for i in range(1, n + 1):
            port = free_port()
            cmd = replica_command(port, root_dir, token, cookie_secret_file, database_url)
            replicas.append(
                _spawn(f"replica-{i}", port, [*cmd, *extra_args], log_dir / f"replica-{i}.log")
            )
        for r in replicas:
            wait_ready(r, timeout=timeout)
    except BaseException:
        stop_all(replicas)
        raise
    return replicas


def stop_all(procs: Sequence[Proc]) -> None:
    """Stop them together (terminate all, then wait): a replica's shutdown takes seconds."""
    for p in procs:
        if p.proc.poll() is None:
            p.proc.terminate()
    for p in procs:
        p.stop()


def ensure_haproxy() -> Path:
    """Debian's HAProxy, installed with apt when missing."""
    if not HAPROXY.exists():
        apt_install("haproxy")
        if not HAPROXY.exists():
            raise RuntimeError(f"haproxy is installed but {HAPROXY} is missing")
    return HAPROXY


def haproxy_config(port: int, backends: Sequence[tuple[str, int]]) -> str:
    """Round robin over the replicas that answer /api, a browser kept on its first one."""
    servers = "\n".join(
        f"    server {name} 127.0.0.1:{p} cookie {name} check inter 2s fall 2 rise 2"
        for name, p in backends
    )
    return f"""\
global
    maxconn 2048
    log stdout format raw local0 info

defaults
    mode http
    log global
    option httplog
    option redispatch
    retries 2
    timeout connect 5s
    timeout client 5m
    timeout server 5m
    timeout http-request 30s
    timeout queue 30s
    # websockets (kernels, the log's sync) once upgraded
    timeout tunnel 1h
    timeout client-fin 30s

frontend anode
    bind 127.0.0.1:{port}
    default_backend replicas

backend replicas
    balance roundrobin
    option httpchk GET /api
    http-check expect status 200
    # kernels live in one replica's memory: a browser stays where it started
    cookie SRV insert indirect nocache
    http-response set-header X-Anode-Replica %s
{servers}
"""


def start_haproxy(
    folder: Path,
    backends: Sequence[tuple[str, int]],
    *,
    port: int = 0,
    binary: Path | None = None,
    timeout: float = 30.0,
) -> Proc:
    """HAProxy in the foreground on `port` (0: a free one), returned once it serves /api."""
    binary = binary or ensure_haproxy()
    port = port or free_port()
    config = folder / "haproxy.cfg"
    config.write_text(haproxy_config(port, backends))
    check = subprocess.run(
        [str(binary), "-c", "-q", "-f", str(config)], capture_output=True, text=True, timeout=30
    )
    if check.returncode != 0:
        raise RuntimeError(f"{config} is invalid: {(check.stdout + check.stderr).strip()}")
    proxy = _spawn("haproxy", port, [str(binary), "-db", "-f", str(config)], folder / "haproxy.log")
    try:
        wait_ready(proxy, timeout=timeout)
    except BaseException:
        proxy.stop()
        raise
    return proxy


def main(args: argparse.Namespace) -> int:
    """The demo until Ctrl-C or SIGTERM; then HAProxy, the replicas and PostgreSQL stop."""
    if args.replicas < 1:
        raise UsageError("--replicas must be at least 1")
    ensure_kernelspec()
    haproxy = ensure_haproxy()  # before anything starts: it may need apt
    folder = Path(tempfile.mkdtemp(prefix="anode-cluster-"))
    root = folder / "notebooks"
    root.mkdir()
    write_demo_notebook(root)
    token = secrets.token_hex(24)
    # Both stop the cluster, even when started with SIGINT ignored (a script's `&`).
    interrupt = signal.signal(signal.SIGINT, signal.default_int_handler)
    terminate = signal.signal(signal.SIGTERM, signal.default_int_handler)
    stack = ExitStack()
    try:
        url = os.environ.get("ANODE_DATABASE_URL")
        if not url:
            print("== starting a throwaway PostgreSQL", flush=True)
            url = stack.enter_context(ThrowawayPostgres()).url
        print(f"== starting {args.replicas} JupyterLab replicas (logs in {folder})", flush=True)
        secret = write_cookie_secret(folder / "cookie_secret")
        replicas = start_replicas(
            args.replicas, url, root, token=token, cookie_secret_file=secret, log_dir=folder
        )
        stack.callback(stop_all, replicas)
        backends = [(r.name, r.port) for r in replicas]
        proxy = start_haproxy(folder, backends, port=args.port, binary=haproxy)
        stack.callback(proxy.stop)
        print(f"\n   Open {proxy.url}/lab/tree/demo.ipynb?token={token}\n")
        for r in replicas:
            print(f"   {r.name}: {r.url}/lab/tree/demo.ipynb?token={token}")
        print(f"   database: {url}\n\n== Ctrl-C stops the cluster", flush=True)
        return _watch([proxy, *replicas])
    except KeyboardInterrupt:
        return 0
    except RuntimeError as err:  # a process that did not start: its log's tail says why
        print(f"anode cluster: {err}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut this short
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("== stopping the cluster", flush=True)
        stack.close()
        signal.signal(signal.SIGINT, interrupt)
        signal.signal(signal.SIGTERM, terminate)
        print(f"== stopped; the logs are in {folder}", flush=True)


def _watch(procs: Sequence[Proc]) -> int:
    """Until Ctrl-C, or until one of them dies (then the rest are stopped too)."""
    while True:
        for p in procs:
            if p.proc.poll() is not None:
                print(f"== {p.name} exited ({p.proc.returncode}); {p.log}:\n{log_tail(p.log)}")
                return 1
        time.sleep(1)

"""The throwaway PostgreSQL of tests and `make cluster`, and the cluster's HAProxy config."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from anode_ext.cluster import HAPROXY, haproxy_config, replica_command
from anode_ext.pgserver import ThrowawayPostgres, port_open


def test_throwaway_postgres_serves_and_leaves_nothing() -> None:
    with ThrowawayPostgres() as pg:
        assert pg.url == f"postgresql://{pg.user}@127.0.0.1:{pg.port}/anode"
        base, port = pg.base, pg.port
        assert base is not None and base.is_dir()
        with psycopg.connect(pg.url, autocommit=True) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
            row = conn.execute("SHOW server_encoding").fetchone()
            assert row == ("UTF8",)
        assert pg.psql("SELECT current_database()").strip() == "anode"
    assert pg.base is None
    assert not base.exists()
    assert not port_open(port)
    pg.stop()  # a second stop is harmless


def test_listen_notify_between_two_connections() -> None:
    with (
        ThrowawayPostgres() as pg,
        psycopg.connect(pg.url, autocommit=True) as listener,
        psycopg.connect(pg.url, autocommit=True) as sender,
    ):
        listener.execute("LISTEN anode_test")
        sender.execute("SELECT pg_notify('anode_test', 'hello')")
        got = list(listener.notifies(timeout=10, stop_after=1))
        assert [(n.channel, n.payload) for n in got] == [("anode_test", "hello")]


def test_cli_prints_the_url_and_stops_on_ctrl_c() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "anode_ext.pgserver"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        m = re.fullmatch(r"postgresql://[\w.-]+@127\.0\.0\.1:(\d+)/anode", url)
        assert m, (url, proc.stderr.read() if proc.poll() is not None and proc.stderr else "")
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0
        assert not port_open(int(m.group(1)))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


BACKENDS = [("replica-1", 41001), ("replica-2", 41002)]


def test_haproxy_config() -> None:
    cfg = haproxy_config(40999, BACKENDS)
    lines = [s.split() for s in cfg.splitlines() if s.strip() and not s.strip().startswith("#")]
    assert ["mode", "http"] in lines
    assert ["bind", "127.0.0.1:40999"] in lines
    assert ["balance", "roundrobin"] in lines
    assert ["option", "httpchk", "GET", "/api"] in lines
    assert ["http-check", "expect", "status", "200"] in lines
    assert ["timeout", "tunnel", "1h"] in lines
    for kind in ("connect", "client", "server"):
        assert any(w[:2] == ["timeout", kind] for w in lines), kind
    assert ["cookie", "SRV", "insert", "indirect", "nocache"] in lines
    servers = [w for w in lines if w[0] == "server"]
    assert [(w[1], w[2]) for w in servers] == [
        ("replica-1", "127.0.0.1:41001"),
        ("replica-2", "127.0.0.1:41002"),
    ]
    for w in servers:
        assert "check" in w
        assert w[w.index("cookie") + 1] == w[1]  # the sticky cookie names the replica


def test_haproxy_accepts_the_config(tmp_path: Path) -> None:
    if not HAPROXY.exists():
        pytest.skip("HAProxy is not installed (make cluster installs it)")
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(haproxy_config(40999, BACKENDS))
    done = subprocess.run([str(HAPROXY), "-c", "-f", str(cfg)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_replicas_share_token_secret_and_database(tmp_path: Path) -> None:
    cmd = replica_command(
        8001, tmp_path, "tok", tmp_path / "secret", "postgresql://u@127.0.0.1:5/anode"
    )
    assert cmd[:3] == [sys.executable, "-m", "jupyterlab"]
    for flag in (
        "--port=8001",
        "--ServerApp.port_retries=0",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.root_dir={tmp_path}",
        "--ServerApp.jpserver_extensions=anode_ext=True",
        "--IdentityProvider.token=tok",
        f"--ServerApp.cookie_secret_file={tmp_path / 'secret'}",
        "--AnodeApp.database_url=postgresql://u@127.0.0.1:5/anode",
    ):
        assert flag in cmd
    assert ("--allow-root" in cmd) == (os.geteuid() == 0)

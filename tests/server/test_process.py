"""A real `jupyter server` process with the extension: REST in, a runtime it starts, outputs out."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

TOKEN = "test-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def call(port: int, path: str, payload: Any = None, token: str = TOKEN) -> tuple[int, Any]:
    data = None if payload is None else json.dumps(payload).encode()
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=data,
        method="GET" if data is None else "POST",
        headers={"Authorization": f"token {token}"},
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def test_a_real_server_runs_a_queued_cell(tmp_path: Path) -> None:
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "jupyter_server",
        f"--port={port}",
        "--no-browser",
        f"--ServerApp.root_dir={tmp_path}",
        f"--IdentityProvider.token={TOKEN}",
        "--ServerApp.jpserver_extensions=anode_ext=True",
        "--AnodeApp.warm_runtimes=0",
    ]
    if os.geteuid() == 0:
        cmd.append("--allow-root")
    server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if call(port, "/anode/api/notebooks")[0] == 200:
                    break
            except OSError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, (
                "the server did not come up"
            )
            time.sleep(0.5)
        assert call(port, "/anode/api/notebooks", token="wrong")[0] == 403
        status, created = call(port, "/anode/api/notebooks", {"title": "e2e"})
        assert status == 201
        nb = created["id"]
        x = uuid.uuid4().hex
        events = [
            {
                "id": uuid.uuid4().hex,
                "name": "v1.CellCreated",
                "args": {"cell_id": "c", "cell_type": "code", "source": "6 * 7", "position": "V"},
            },
            {
                "id": uuid.uuid4().hex,
                "name": "v1.ExecutionRequested",
                "args": {"execution_id": x, "cell_id": "c", "code": "6 * 7"},
            },
        ]
        assert call(port, f"/anode/api/notebooks/{nb}/events", {"events": events})[0] == 200
        deadline = time.monotonic() + 240
        while True:
            state = call(port, f"/anode/api/notebooks/{nb}")[1]
            if state["executions"][0]["state"] in ("completed", "failed"):
                break
            assert time.monotonic() < deadline, state["executions"]
            time.sleep(0.5)
        assert state["executions"][0]["status"] == "ok"
        assert state["cells"][0]["outputs"][0]["data"]["text/plain"] == "42"
        assert (tmp_path / ".anode" / f"{nb}.anode").is_file()
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()

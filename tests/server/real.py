"""A real `jupyter server` process with the extension, for end-to-end and fault tests."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

TOKEN = "test-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """`jupyter server` on a port, root dir and store dir that survive restarts."""

    def __init__(
        self,
        root: Path,
        *options: str,
        port: int | None = None,
        app: str = "jupyter_server",
        env: dict[str, str] | None = None,
    ) -> None:
        self.root = root
        self.app = app
        self.env = env  # the environment beside ours (None: ours as it is)
        self.port = port or free_port()
        self.options = options
        self.proc: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 120) -> Server:
        cmd = [
            sys.executable,
            "-m",
            self.app,
            f"--port={self.port}",
            "--port-retries=0",
            "--no-browser",
            f"--ServerApp.root_dir={self.root}",
            f"--IdentityProvider.token={TOKEN}",
            "--ServerApp.jpserver_extensions=anode_ext=True",
            *self.options,
        ]
        if os.geteuid() == 0:
            cmd.append("--allow-root")
        env = None if self.env is None else {**os.environ, **self.env}
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True, env=env
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self.call("/anode/api/notebooks")[0] == 200:
                    return self
            except OSError:
                pass
            assert self.proc.poll() is None, "the server exited"
            assert time.monotonic() < deadline, "the server did not come up"
            time.sleep(0.3)

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks, no goodbye."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(30)

    def call(self, path: str, payload: Any = None, token: str = TOKEN) -> tuple[int, Any]:
        data = None if payload is None else json.dumps(payload).encode()
        req = urllib.request.Request(
            self.url + path,
            data=data,
            method="GET" if data is None else "POST",
            headers={"Authorization": f"token {token}"},
        )
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as err:
            return err.code, err.read()

    def create(self, title: str = "e2e") -> str:
        status, created = self.call("/anode/api/notebooks", {"title": title})
        assert status == 201, created
        return str(created["id"])

    def state(self, nb: str) -> dict[str, Any]:
        status, state = self.call(f"/anode/api/notebooks/{nb}")
        assert status == 200, state
        return dict(state)

"""Binder's install steps in a fresh venv: requirements.txt, then postBuild. Then the
server, the anode-pyodide kernel and the labextension must come up from it."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from pathlib import Path

from ..server.real import TOKEN, free_port

REPO = Path(__file__).parents[2]


def test_binder_installs_a_working_lab(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    bin_ = venv / "bin"
    home = tmp_path / "home"
    home.mkdir()
    env = dict(
        os.environ,
        PATH=f"{bin_}:{os.environ['PATH']}",
        HOME=str(home),
        JUPYTER_CONFIG_DIR=str(home / ".jupyter"),
        JUPYTER_DATA_DIR=str(home / ".local/share/jupyter"),
        VIRTUAL_ENV=str(venv),
    )
    env.pop("PYTHONPATH", None)
    pip = [str(bin_ / "python"), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "-r", str(REPO / "binder" / "requirements.txt")], env=env, check=True)
    subprocess.run(["bash", str(REPO / "binder" / "postBuild")], env=env, check=True, cwd=home)
    assert (home / "demo.ipynb").is_file()

    # The kernel: a fresh anode-pyodide runs code.
    code = (
        "from jupyter_client.manager import start_new_kernel\n"
        "km, kc = start_new_kernel(kernel_name='anode-pyodide', startup_timeout=240)\n"
        "reply = kc.execute_interactive('print(6 * 7)', timeout=240)\n"
        "assert reply['content']['status'] == 'ok', reply\n"
        "kc.stop_channels(); km.shutdown_kernel(now=True)\n"
        "print('kernel ok')\n"
    )
    out = subprocess.run(
        [str(bin_ / "python"), "-c", code], env=env, capture_output=True, text=True, timeout=600
    )
    assert "kernel ok" in out.stdout, out.stderr[-3000:]

    # The server with the extension, opening the demo on the lab page that loads the labextension.
    port = free_port()
    cmd = [
        str(bin_ / "jupyter"),
        "lab",
        "--no-browser",
        f"--port={port}",
        f"--IdentityProvider.token={TOKEN}",
        f"--ServerApp.root_dir={home}",
    ]
    if os.geteuid() == 0:
        cmd.append("--allow-root")
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        page = ""
        for _ in range(600):
            try:
                url = f"http://127.0.0.1:{port}/lab/tree/demo.ipynb?token={TOKEN}"
                with urllib.request.urlopen(url, timeout=10) as resp:
                    page = resp.read().decode()
                break
            except OSError:
                assert proc.poll() is None, "jupyter lab exited"
                subprocess.run(["sleep", "0.3"])
        assert '"name": "anode-labextension"' in page or "anode-labextension" in page
        req = urllib.request.Request(
            f"http://127.0.0.1:{port}/anode/api/documents?path=demo.ipynb",
            headers={"Authorization": f"token {TOKEN}"},
        )
        with urllib.request.urlopen(req, timeout=60) as resp:
            assert resp.status == 200
    finally:
        proc.terminate()
        proc.wait(30)

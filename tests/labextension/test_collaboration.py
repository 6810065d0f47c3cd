"""Anode beside jupyter-collaboration: notebooks Anode serves still open through
their log, and jupyter-collaboration never opens a room for them (no second
writer of the file).

jupyter-collaboration is not a dependency of Anode: its packages are put in a
directory of their own for this module (pip, no dependencies: the rest is in
our venv already) and the server sees them through PYTHONPATH, JUPYTER_PATH
and JUPYTER_CONFIG_PATH, as an installation of both would.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from ..server.real import TOKEN, Server
from .conftest import serve_lab, wait_for_kernel
from .test_document import nb_id, outputs_text, type_at_end_of_first_cell, wait_until

# jupyter-collaboration 5 and the packages it brings that we do not have.
COLLABORATION = (
    "jupyter-collaboration==5.0.4",
    "jupyter-collaboration-ui==3.0.4",
    "jupyter-docprovider==3.0.4",
    "jupyter-server-ydoc==3.0.4",
    "jupyter-ydoc==4.2.1",
    "jupyter-server-fileid==0.10.0",
    "pycrdt-websocket==0.16.5",
    "pycrdt-store==0.1.5",
    "sqlite-anyio==0.2.10",
)
PATH = "both.ipynb"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    where = tmp_path_factory.mktemp("collaboration")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(where)]
        + list(COLLABORATION),
        check=True,
    )
    env = {
        "PYTHONPATH": str(where),
        "JUPYTER_PATH": str(where / "share" / "jupyter"),
        "JUPYTER_CONFIG_PATH": str(where / "etc" / "jupyter"),
    }
    nb = new_notebook(cells=[new_code_cell("print('both')", id="a")])
    yield from serve_lab(tmp_path_factory, {PATH: nb}, env=env)


def open_page(browser: Any, lab: Server) -> tuple[Any, list[str], list[str]]:
    page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
    page.set_default_timeout(120_000)
    sockets: list[str] = []
    errors: list[str] = []
    page.on("websocket", lambda ws: sockets.append(ws.url.split("?")[0]))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(f"{lab.url}/lab/tree/{PATH}?token={TOKEN}&reset")
    wait_for_kernel(page)
    page.wait_for_selector("[data-anode-notebook-id]")
    return page, sockets, errors


def test_notebooks_anode_serves_open_through_the_log_beside_jupyter_collaboration(
    lab: Server, browser: Any
) -> None:
    (alice, sockets, errors), (bob, _, _) = open_page(browser, lab), open_page(browser, lab)
    # jupyter-collaboration is there and running (its awareness room), but
    # its notebook model is not: the notebook is Anode's.
    active = """id => window.jupyterapp.isPluginActivated(id)"""
    assert alice.evaluate(active, "@jupyter/docprovider-extension:content-provider")
    assert not alice.evaluate(
        "id => window.jupyterapp.hasPlugin(id)", "@jupyter/docprovider-extension:ynotebook"
    )
    provider = "() => window.jupyterapp.docRegistry.getWidgetFactory('Notebook').contentProviderId"
    assert alice.evaluate(provider) == "anode"
    nb = nb_id(alice)
    assert any(url.endswith(f"/anode/api/notebooks/{nb}/sync") for url in sockets)
    rooms = [url for url in sockets if "/api/collaboration/room/" in url]
    assert rooms and all("globalAwareness" in url for url in rooms), rooms

    type_at_end_of_first_cell(lab, alice, bob, "  # both")

    alice.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    wait_until(lambda: "both" in outputs_text(bob, "a"), "bob to see the output")

    def on_disk() -> bool:
        cell = nbformat.read(Path(lab.root) / PATH, as_version=4).cells[0]
        return cell.source.endswith("# both") and bool(cell.outputs)

    wait_until(on_disk, "the file to have the edit and the output")
    assert not [e for e in errors if "failed to activate" in e or "content provider" in e], errors
    alice.context.close()
    bob.context.close()

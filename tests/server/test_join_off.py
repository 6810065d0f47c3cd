"""`c.AnodeApp.join_kernels = False`: an anode-pyodide kernel the server starts
for a document keeps a log of its own; the server makes none for the document.
Break this catches: the setting ignored (the kernel joins anyway)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from anode_ext.kernel.install import install

from .test_kernel_join import ready_client
from .test_rest import body


@pytest.fixture
def anode_config() -> dict[str, object]:
    return {"join_kernels": False}


async def test_a_kernel_keeps_its_own_log_when_joins_are_off(
    jp_fetch: Any, jp_serverapp: Any, jp_root_dir: Path, tmp_path: Path
) -> None:
    install(user=True)
    nbformat.write(new_notebook(cells=[new_code_cell("1", id="c1")]), jp_root_dir / "own.ipynb")
    session = {"path": "own.ipynb", "type": "notebook", "kernel": {"name": "anode-pyodide"}}
    resp = await jp_fetch("api", "sessions", method="POST", body=json.dumps(session))
    assert jp_serverapp.web_app.settings["anode_kernels"] is None
    km = jp_serverapp.kernel_manager.get_kernel(body(resp)["kernel"]["id"])
    kc = await ready_client(km, "x = 6 * 7")
    try:
        listed = body(await jp_fetch("anode", "api", "notebooks"))["notebooks"]
        assert listed == []  # no log was made for the document, none joined
        notebooks = jp_serverapp.web_app.settings["anode_notebooks"]
        assert await notebooks.notebook_of("own.ipynb") is None
    finally:
        kc.stop_channels()
        await jp_fetch("api", "sessions", body(resp)["id"], method="DELETE")

"""A user with only the `read` right opens the notebook: it shows the log's
document, read-only, and nothing typed reaches the log."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from nbformat.v4 import new_code_cell, new_notebook

from ..server.real import TOKEN, Server
from .conftest import serve_lab


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    nb = new_notebook(cells=[new_code_cell("x = 1", id="a")])
    authorizer = "--ServerApp.authorizer_class=tests.labextension.readonly.ReadOnlyAnode"
    yield from serve_lab(tmp_path_factory, {"r.ipynb": nb}, authorizer)


def test_a_reader_cannot_edit(lab: Server, browser: Any) -> None:
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(120_000)
    try:
        page.goto(f"{lab.url}/lab/tree/r.ipynb?token={TOKEN}&reset")
        page.wait_for_selector("[data-anode-notebook-id]")
        nb = page.get_attribute("[data-anode-notebook-id]", "data-anode-notebook-id")
        status, before = lab.call(f"/anode/api/notebooks/{nb}/events")
        assert status == 200
        page.locator(".jp-Notebook .jp-Cell .cm-content").first.click()
        page.keyboard.press("End")
        page.keyboard.type("2", delay=20)
        time.sleep(1.5)
        status, after = lab.call(f"/anode/api/notebooks/{nb}/events")
        # (the kernel's runtime may have joined meanwhile: not the reader's doing)
        new = [e["name"] for e in after["events"][len(before["events"]) :]]
        assert not [n for n in new if n.startswith(("v1.Cell", "v1.Document"))], new
        assert lab.state(str(nb))["cells"][0]["source"] == "x = 1"
        shown = page.evaluate(
            "() => window.jupyterapp.shell.currentWidget.content.model.sharedModel.cells[0]"
            ".getSource()"
        )
        assert shown == "x = 1"
    finally:
        context.close()

"""A real JupyterLab with the extension, and Debian's Chromium driven by Playwright."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from ..server.real import TOKEN, Server

CHROMIUM = os.environ.get("ANODE_CHROMIUM", "/usr/bin/chromium")

SHOW_PANEL = """async () => {
  await window.jupyterapp.restored;
  window.jupyterapp.shell.activateById('anode-panel');
}"""

CELLS = {
    "slow": "import time\nfor i in range(80):\n    time.sleep(0.1)\n'slow done'",
    "ask": "name = input('Your name? ')\nprint('hello', name)",
    "x": "x = 1\nx",
}


@pytest.fixture(autouse=True)
def jp_asyncio_loop() -> Iterator[None]:
    """Not here: these tests drive real processes from Playwright's own loop, and
    pytest-jupyter's per-test loop would be closed under it."""
    yield None


@pytest.fixture(autouse=True)
def jp_server_cleanup() -> Iterator[None]:
    """No in-process server to clean up here."""
    yield None


def serve_lab(
    tmp_path_factory: pytest.TempPathFactory,
    files: dict[str, Any],
    *options: str,
    env: dict[str, str] | None = None,
) -> Iterator[Server]:
    """A real `jupyter lab` on a root holding `files` (name -> notebook), for one module."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (make test does)")
    root = tmp_path_factory.mktemp("lab")
    for name, nb in files.items():
        nb.metadata["kernelspec"] = {
            "name": "anode-pyodide",
            "display_name": "Python (Anode, Pyodide)",
            "language": "python",
        }
        nbformat.write(nb, root / name)
    settings = lab_options(tmp_path_factory.mktemp("lab-settings"))
    server = Server(root, *settings, *options, app="jupyterlab", env=env)
    server.start(timeout=180)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    nb = new_notebook(cells=[new_code_cell(src, id=cid) for cid, src in CELLS.items()])
    yield from serve_lab(tmp_path_factory, {"shared.ipynb": nb})


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        args = ["--no-sandbox"] if os.geteuid() == 0 else []
        b = p.chromium.launch(executable_path=CHROMIUM, args=args)
        try:
            yield b
        finally:
            b.close()


def lab_options(settings: Path) -> list[str]:
    """JupyterLab for tests: the app in `window.jupyterapp`, no autosave (two pages
    on one file would each warn that the other changed it), no news pop-up."""
    for plugin, values in {
        "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
        "@jupyterlab/apputils-extension/notification": {"fetchNews": "false"},
    }.items():
        path = settings / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    return [
        "--LabApp.expose_app_in_browser=True",
        f"--LabApp.user_settings_dir={settings}",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]


def open_notebook(browser: Any, lab: Server, path: str = "shared.ipynb") -> Any:
    """A new browser context (a collaborator of its own) with the notebook and the panel open."""
    context = browser.new_context(viewport={"width": 1500, "height": 950})
    page = context.new_page()
    page.set_default_timeout(120_000)
    page.goto(f"{lab.url}/lab/tree/{path}?token={TOKEN}&reset")
    wait_for_kernel(page)
    page.evaluate(SHOW_PANEL)
    page.wait_for_selector("#anode-panel .anode-status[data-status='live']")
    return page


def wait_for_kernel(page: Any) -> None:
    page.wait_for_function(
        """() => {
          const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
          const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
          return k && k.status === 'idle';
        }""",
        timeout=180_000,
    )


def run_cell(page: Any, cell_id: str, source: str | None = None) -> None:
    """Run one cell through JupyterLab's own command, after setting its source if given."""
    page.evaluate(
        """([cellId, source]) => {
          const panel = window.jupyterapp.shell.currentWidget;
          const nb = panel.content;
          const index = nb.widgets.findIndex(c => c.model.id === cellId);
          if (source !== null) nb.widgets[index].model.sharedModel.setSource(source);
          nb.activeCellIndex = index;
          nb.deselectAll();
          void window.jupyterapp.commands.execute('notebook:run-cell');  // not awaited: it resolves when the cell ends
        }""",
        [cell_id, source],
    )


def screenshots() -> Path | None:
    """Where to save the panel's pictures (README): $ANODE_SCREENSHOTS, if set."""
    where = os.environ.get("ANODE_SCREENSHOTS")
    return Path(where) if where else None


def save_panel(page: Any, name: str) -> None:
    where = screenshots()
    if where is not None:
        where.mkdir(parents=True, exist_ok=True)
        page.locator("#anode-panel").screenshot(path=str(where / f"{name}.png"))

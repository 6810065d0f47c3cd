"""JupyterLab through HAProxy onto two replicas on one PostgreSQL: two people,
each on a replica of their own, edit and run one notebook."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from ..conftest import new_database
from ..server.real import Server
from .conftest import lab_options, open_notebook, run_cell, serve_lab


class Cluster:
    def __init__(self, url: str, root: Path, replicas: list[Server]) -> None:
        self.url, self.root, self.replicas = url, root, replicas


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory, postgres_server: str
) -> Iterator[Cluster]:
    from anode_ext.cluster import start_haproxy

    nb = new_notebook(cells=[new_code_cell("x = 1", id="c1")])
    with new_database(postgres_server) as url:
        first = serve_lab(tmp_path_factory, {"shared.ipynb": nb}, f"--AnodeApp.database_url={url}")
        a = next(first)
        settings = lab_options(tmp_path_factory.mktemp("lab-settings"))
        b = Server(a.root, *settings, f"--AnodeApp.database_url={url}", app="jupyterlab")
        b.start(timeout=180)
        folder = tmp_path_factory.mktemp("haproxy")
        proxy = start_haproxy(folder, [("r1", a.port), ("r2", b.port)])
        try:
            yield Cluster(proxy.url, a.root, [a, b])
        finally:
            proxy.stop()
            b.stop()
            first.close()


def test_two_people_on_two_replicas_edit_and_run_one_notebook(
    cluster: Cluster, browser: Any
) -> None:
    pages = [open_notebook(browser, cluster) for _ in range(2)]
    replicas = [
        p.evaluate("async () => (await fetch('/api')).headers.get('x-anode-replica')")
        for p in pages
    ]
    assert sorted(replicas) == ["r1", "r2"]  # HAProxy put them on one each
    a, b = pages
    run_cell(a, "c1", "print('from A', 6 * 7)")
    b.wait_for_function(
        """() => {
          const nb = window.jupyterapp.shell.currentWidget.content;
          const cell = nb.widgets.find(c => c.model.id === 'c1');
          return cell.model.sharedModel.getSource() === "print('from A', 6 * 7)"
            && cell.node.innerText.includes('from A 42');
        }"""
    )
    # The leader (whichever replica) writes the file; both tabs end up clean.
    for page in pages:
        page.wait_for_function("() => !window.jupyterapp.shell.currentWidget.context.model.dirty")
    cells = nbformat.read(cluster.root / "shared.ipynb", as_version=4).cells
    assert cells[0].source == "print('from A', 6 * 7)"
    assert "from A 42" in cells[0].outputs[0]["text"]
    for page in pages:
        page.context.close()

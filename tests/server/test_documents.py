"""Notebook documents over the server: the document a tab loads, the .ipynb that
follows the log without a Save, a Save, and changes written to the file."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import nbformat
import pycrdt
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from anode_ext.log.document import decode_update

from .test_rest import body, event, push


@pytest.fixture
def anode_config() -> dict[str, object]:
    return {"file_write_delay": 0.2, "file_poll_interval": 0.2}


def write_nb(path: Path, kernel: str = "anode-pyodide") -> None:
    nb = new_notebook(cells=[new_code_cell("x = 1", id="a"), new_markdown_cell("# t", id="m")])
    nb.metadata["kernelspec"] = {"name": kernel, "display_name": kernel}
    nbformat.write(nb, path)


async def open_doc(jp_fetch: Any, path: str) -> dict[str, Any]:
    return dict(body(await jp_fetch("anode", "api", "documents", params={"path": path})))


async def until(check: Any, what: str, timeout: float = 10) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


def on_disk(path: Path) -> dict[str, Any]:
    """The file's cells (none while the contents manager is writing it in place)."""
    try:
        nb = json.loads(path.read_text())
    except ValueError:
        return {}
    return {c["id"]: c for c in nb["cells"]}


async def test_a_tab_loads_the_document_and_the_file_follows_the_log(
    jp_fetch: Any, jp_root_dir: Path
) -> None:
    write_nb(jp_root_dir / "n.ipynb")
    found = await open_doc(jp_fetch, "n.ipynb")
    assert found["kernel"] == "anode-pyodide"
    nb = found["id"]
    snap = body(await jp_fetch("anode", "api", "notebooks", nb, "document"))
    assert snap["writable"] is True
    doc: pycrdt.Doc[Any] = pycrdt.Doc()
    doc.apply_update(decode_update(snap["update"]))
    cells = doc.get("cells", type=pycrdt.Array)
    assert [str(c["source"]) for c in cells] == ["x = 1", "# t"]
    # a REST client changes a source: the file has it without a Save
    await push(jp_fetch, nb, event("CellSourceChanged", cell_id="a", source="x = 2"))
    path = jp_root_dir / "n.ipynb"
    await until(lambda: "".join(on_disk(path).get("a", {}).get("source", "")) == "x = 2", "file")
    # Save: written now, with the hash JupyterLab compares before its next save
    model = body(
        await jp_fetch(
            "anode", "api", "documents", method="PUT", params={"path": "n.ipynb"}, body=""
        )
    )
    assert model["hash"] and model["last_modified"].count("T") == 1
    assert model["content"] is None and model["path"] == "n.ipynb"


async def test_a_change_written_to_the_file_becomes_events_by_disk(
    jp_fetch: Any, jp_root_dir: Path
) -> None:
    path = jp_root_dir / "d.ipynb"
    write_nb(path)
    nb = (await open_doc(jp_fetch, "d.ipynb"))["id"]
    await jp_fetch("anode", "api", "notebooks", nb, "document")
    edited = nbformat.read(path, as_version=4)
    edited.cells[1].source = "# edited in an editor"
    edited.cells.append(new_code_cell("y = 3", id="new"))
    time.sleep(0.05)
    nbformat.write(edited, path)

    async def events() -> list[dict[str, Any]]:
        page = body(await jp_fetch("anode", "api", "notebooks", nb, "events"))
        return list(page["events"])

    deadline = time.monotonic() + 10
    while not [e for e in await events() if e["user"] == "disk"]:
        assert time.monotonic() < deadline, "no events by disk"
        await asyncio.sleep(0.1)
    state = body(await jp_fetch("anode", "api", "notebooks", nb))
    assert [(c["id"], c["source"]) for c in state["cells"]] == [
        ("a", "x = 1"),
        ("m", "# edited in an editor"),
        ("new", "y = 3"),
    ]
    by_disk = {e["name"] for e in await events() if e["user"] == "disk"}
    assert {"v1.DocumentUpdated", "v1.CellCreated"} <= by_disk


async def test_a_notebook_of_another_kernel_is_never_written(
    jp_fetch: Any, jp_root_dir: Path
) -> None:
    path = jp_root_dir / "other.ipynb"
    write_nb(path, kernel="python3")
    before = path.read_text()
    found = await open_doc(jp_fetch, "other.ipynb")
    assert found["kernel"] == "python3"
    change = event("CellSourceChanged", cell_id="a", source="changed by the log")
    await push(jp_fetch, found["id"], change)
    await asyncio.sleep(1.0)
    assert path.read_text() == before


async def test_a_new_notebook_without_cells_gets_one_to_type_in(
    jp_fetch: Any, jp_root_dir: Path
) -> None:
    nbformat.write(new_notebook(), jp_root_dir / "Untitled.ipynb")
    nb = (await open_doc(jp_fetch, "Untitled.ipynb"))["id"]
    state = body(await jp_fetch("anode", "api", "notebooks", nb))
    assert [(c["cell_type"], c["source"]) for c in state["cells"]] == [("code", "")]


async def test_a_disk_change_reaches_a_log_no_browser_has_opened_yet(
    jp_fetch: Any, jp_root_dir: Path
) -> None:
    """A kernel joined the log (no tab asked for its document): the file's edit is not dropped."""
    path = jp_root_dir / "k.ipynb"
    write_nb(path)
    nb = (await open_doc(jp_fetch, "k.ipynb"))["id"]
    edited = nbformat.read(path, as_version=4)
    edited.cells[0].source = "x = 'from disk'"
    time.sleep(0.05)
    nbformat.write(edited, path)

    async def source() -> str:
        state = body(await jp_fetch("anode", "api", "notebooks", nb))
        return str(state["cells"][0]["source"])

    deadline = time.monotonic() + 10
    while await source() != "x = 'from disk'":
        assert time.monotonic() < deadline, "the disk edit never reached the log"
        await asyncio.sleep(0.1)

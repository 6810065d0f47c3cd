"""The notebook open in JupyterLab is its log: two (then three) browser contexts on
one notebook, in Debian's Chromium, against a real `jupyter lab`.

Keystrokes typed in one context reach the other and the log as that user's;
Run All queues every cell at once; every context shows every output, whoever
ran it (a collaborator, or a REST client); the .ipynb on disk follows without
a Save, and a change written to the file reaches the open notebooks.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from ..server.real import TOKEN, Server
from .conftest import serve_lab, wait_for_kernel

PATH = "doc.ipynb"
CELLS = [
    ("a", "print('alpha')"),
    ("b", "import time\ntime.sleep(0.5)\nprint('beta')"),
    ("c", "21 * 2"),
]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    cells = [new_code_cell(src, id=cid) for cid, src in CELLS]
    cells.append(new_markdown_cell("# notes", id="m"))
    nb = new_notebook(cells=cells)
    yield from serve_lab(tmp_path_factory, {PATH: nb}, "--AnodeApp.file_poll_interval=0.5")


def open_doc(browser: Any, lab: Server) -> Any:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.set_default_timeout(120_000)
    page.goto(f"{lab.url}/lab/tree/{PATH}?token={TOKEN}&reset")
    wait_for_kernel(page)
    page.wait_for_selector("[data-anode-notebook-id]")
    return page


@pytest.fixture(scope="module")
def pages(lab: Server, browser: Any) -> Iterator[tuple[Any, Any]]:
    alice = open_doc(browser, lab)
    bob = open_doc(browser, lab)
    yield alice, bob
    alice.context.close()
    bob.context.close()


def nb_id(page: Any) -> str:
    return str(page.get_attribute("[data-anode-notebook-id]", "data-anode-notebook-id"))


def username(page: Any) -> str:
    return str(page.evaluate("() => window.jupyterapp.serviceManager.user.identity.username"))


def source(page: Any, cell_id: str) -> str:
    return str(
        page.evaluate(
            """id => window.jupyterapp.shell.currentWidget.content.model.sharedModel.cells
                 .find(c => c.getId() === id).getSource()""",
            cell_id,
        )
    )


def outputs_text(page: Any, cell_id: str) -> str:
    return str(
        page.evaluate(
            """id => {
              const nb = window.jupyterapp.shell.currentWidget.content;
              const cell = nb.widgets.find(c => c.model.id === id);
              const out = cell && cell.node.querySelector('.jp-OutputArea');
              return out ? out.innerText : '';
            }""",
            cell_id,
        )
    )


def wait_until(check: Any, what: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def type_at_end_of_first_cell(lab: Server, typist: Any, watcher: Any, text: str) -> None:
    """Keys typed in one context reach the other, and the log has them as the typist's."""
    before = source(typist, "a")
    typist.locator(".jp-Notebook .jp-Cell .cm-content").first.click()
    typist.keyboard.press("End")
    typist.keyboard.type(text, delay=20)
    wait_until(lambda: source(watcher, "a") == before + text, "the other context to see the keys")
    edits = [e for e in events(lab, nb_id(typist)) if e["name"] == "v1.CellSourceEdited"]
    assert edits and {e["user"] for e in edits} == {username(typist)}


def events(lab: Server, nb: str) -> list[dict[str, Any]]:
    status, page = lab.call(f"/anode/api/notebooks/{nb}/events?after=0")
    assert status == 200
    return list(page["events"])


def test_keystrokes_in_one_context_reach_the_other_and_the_log(lab: Server, pages: Any) -> None:
    alice, bob = pages
    nb = nb_id(alice)
    assert nb == nb_id(bob)
    type_at_end_of_first_cell(lab, alice, bob, "  # hi")
    assert lab.state(nb)["cells"][0]["source"] == "print('alpha')  # hi"


def test_run_all_queues_every_cell_at_once_and_everyone_sees_the_outputs(
    lab: Server, pages: Any
) -> None:
    alice, bob = pages
    nb = nb_id(alice)
    before = len(events(lab, nb))
    alice.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    wait_until(lambda: "42" in outputs_text(bob, "c"), "bob to see the last output")
    assert "alpha" in outputs_text(bob, "a") and "beta" in outputs_text(bob, "b")
    log = events(lab, nb)[before:]
    requested = [e for e in log if e["name"] == "v1.ExecutionRequested"]
    started = [e for e in log if e["name"] == "v1.ExecutionStarted"]
    assert [e["args"]["cell_id"] for e in requested] == ["a", "b", "c"]
    assert {e["user"] for e in requested} == {username(alice)}
    assert len({e["at"] for e in requested}) == 1  # one push: all pending at once
    assert max(e["seq"] for e in requested) < min(e["seq"] for e in started)
    # the count comes with the end, for every viewer
    bob.wait_for_function(
        """() => window.jupyterapp.shell.currentWidget.content.widgets
                 .find(c => c.model.id === 'c').model.executionCount !== null"""
    )


def test_an_execution_queued_over_rest_shows_in_both(lab: Server, pages: Any) -> None:
    nb = nb_id(pages[0])
    event = {
        "id": uuid.uuid4().hex,
        "name": "v1.ExecutionRequested",
        "args": {"execution_id": uuid.uuid4().hex, "cell_id": "c", "code": "'from rest'"},
    }
    status, answer = lab.call(f"/anode/api/notebooks/{nb}/events", {"events": [event]})
    assert status == 200, answer
    for page in pages:
        wait_until(lambda p=page: "from rest" in outputs_text(p, "c"), "the REST output")


def test_the_file_on_disk_follows_the_log_without_save(lab: Server, pages: Any) -> None:
    def on_disk() -> dict[str, Any]:
        """The file's cells (none while the contents manager writes it in place)."""
        try:
            nb = json.loads((Path(lab.root) / PATH).read_text())
        except ValueError:
            return {}
        return {c["id"]: c for c in nb["cells"]}

    def has_outputs() -> bool:
        cells = on_disk()
        if not cells:
            return False
        text = json.dumps(cells["c"].get("outputs", []))
        return "from rest" in text and "alpha" in json.dumps(cells["a"]["outputs"])

    wait_until(has_outputs, "the outputs in the .ipynb", timeout=20)
    cells = wait_until(on_disk, "a whole file")
    assert "".join(cells["a"]["source"]) == "print('alpha')  # hi"
    alice, _ = pages
    # Once the file holds what a tab has, the tab is not "unsaved" (no dot, no
    # "Save your work?" on close).
    for page in pages:
        wait_until(
            lambda p=page: p.evaluate("() => !window.jupyterapp.shell.currentWidget.model.dirty"),
            "the tab to be clean",
            timeout=20,
        )
    # JupyterLab's Save writes through the server, with no "changed on disk" dialog.
    alice.keyboard.press("Control+s")
    time.sleep(1)
    dialogs = alice.locator(".jp-Dialog")
    assert dialogs.count() == 0, dialogs.first.inner_text()


def test_a_change_written_to_the_file_reaches_the_open_notebooks(lab: Server, pages: Any) -> None:
    path = Path(lab.root) / PATH
    nb = wait_until(lambda: _read(path), "a whole file")
    nb.cells[3].source = "# notes, edited on disk"
    time.sleep(1.1)  # a new mtime
    nbformat.write(nb, path)
    for page in pages:
        wait_until(lambda p=page: source(p, "m") == "# notes, edited on disk", "the disk edit")
    alice, _ = pages
    disk = [e for e in events(lab, nb_id(alice)) if e["user"] == "disk"]
    assert disk and disk[-1]["name"] in ("v1.CellSourceEdited", "v1.DocumentUpdated")


def test_a_context_opened_later_and_a_reload_show_the_outputs(
    lab: Server, browser: Any, pages: Any
) -> None:
    _, bob = pages
    carol = open_doc(browser, lab)
    try:
        wait_until(lambda: "alpha" in outputs_text(carol, "a"), "carol to see outputs")
        assert "from rest" in outputs_text(carol, "c")
        ids = carol.evaluate(
            """() => window.jupyterapp.shell.currentWidget.content.model.sharedModel.cells
                 .map(c => c.getId())"""
        )
        assert ids == ["a", "b", "c", "m"]  # nothing duplicated
    finally:
        carol.context.close()
    bob.reload()
    wait_for_kernel(bob)
    bob.wait_for_selector("[data-anode-notebook-id]")
    wait_until(lambda: "42" in outputs_text(bob, "c") or "rest" in outputs_text(bob, "c"), "reload")


def _read(path: Path) -> Any:
    try:
        return nbformat.read(path, as_version=4)
    except Exception:  # the server is writing it in place
        return None


def cells_of(page: Any) -> list[dict[str, Any]]:
    return list(
        page.evaluate(
            """() => window.jupyterapp.shell.currentWidget.content.model.sharedModel.cells
                 .map(c => ({id: c.getId(), type: c.cell_type, source: c.getSource(),
                             tags: (c.getMetadata().tags || [])}))"""
        )
    )


def test_insert_move_type_metadata_and_delete_in_one_reach_the_other(
    lab: Server, pages: Any
) -> None:
    alice, bob = pages
    nb = nb_id(alice)
    start = len(events(lab, nb))

    def same() -> bool:
        mine = cells_of(alice)
        served = [
            {"id": c["id"], "type": c["cell_type"], "source": c["source"]}
            for c in lab.state(nb)["cells"]
        ]
        return cells_of(bob) == mine and served == [
            {k: c[k] for k in ("id", "type", "source")} for c in mine
        ]

    def command(name: str) -> None:
        alice.evaluate(f"() => window.jupyterapp.commands.execute('{name}')")

    alice.evaluate("() => { window.jupyterapp.shell.currentWidget.content.activeCellIndex = 0; }")
    command("notebook:insert-cell-below")
    alice.keyboard.type("new = 1", delay=10)
    command("notebook:enter-command-mode")
    wait_until(same, "the inserted cell in both")
    new_id = cells_of(alice)[1]["id"]
    command("notebook:move-cell-up")
    wait_until(lambda: same() and cells_of(bob)[0]["id"] == new_id, "the move in both")
    command("notebook:change-cell-to-markdown")
    wait_until(lambda: same() and cells_of(bob)[0]["type"] == "markdown", "the type in both")
    alice.evaluate(
        """() => window.jupyterapp.shell.currentWidget.content.activeCell.model
                 .setMetadata('tags', ['from-alice'])"""
    )
    wait_until(lambda: cells_of(bob)[0]["tags"] == ["from-alice"], "the metadata in both")
    served = lab.state(nb)["cells"][0]
    assert served["id"] == cells_of(alice)[0]["id"], (lab.state(nb)["cells"], cells_of(alice))
    assert served["metadata"]["tags"] == ["from-alice"]
    command("notebook:delete-cell")
    wait_until(lambda: same() and new_id not in [c["id"] for c in cells_of(bob)], "the delete")
    assert [c["id"] for c in cells_of(bob)] == ["a", "b", "c", "m"]
    moves = ("v1.CellCreated", "v1.CellMoved", "v1.CellDeleted", "v1.CellTypeChanged")
    users = {e["user"] for e in events(lab, nb)[start:] if e["name"] in moves}
    assert users == {username(alice)}


def test_a_server_restart_with_tabs_open_loses_and_duplicates_nothing(
    lab: Server, pages: Any
) -> None:
    alice, bob = pages
    nb = nb_id(alice)
    for page in pages:
        # JupyterLab's own "Server Connection Error", whenever a poll of its
        # fell in the gap: a user closes it (the notebook reconnects by itself).
        dialog = page.locator(".jp-Dialog:has-text('Server Connection Error')")
        page.add_locator_handler(
            dialog,
            lambda d: d.locator(".jp-Dialog-footer button").first.click(),
            no_wait_after=True,
        )
    lab.kill()
    lab.start(timeout=180)
    alice.locator(".jp-Notebook .jp-Cell .cm-content").nth(2).click()
    alice.keyboard.press("End")
    alice.keyboard.type("  # after the restart", delay=20)
    wait_until(
        lambda: source(bob, "c").endswith("# after the restart"), "an edit after the restart"
    )
    log = events(lab, nb)
    assert [e["seq"] for e in log] == list(range(1, len(log) + 1))
    assert len({e["id"] for e in log}) == len(log)
    ids = [c["id"] for c in cells_of(bob)]
    assert ids == [c["id"] for c in lab.state(nb)["cells"]] == ["a", "b", "c", "m"]


def test_input_shows_in_the_notebook_and_anyone_answers(
    lab: Server, browser: Any, pages: Any
) -> None:
    alice, bob = pages
    alice.evaluate(
        """() => {
          const nb = window.jupyterapp.shell.currentWidget.content;
          const index = nb.widgets.findIndex(c => c.model.id === 'b');
          nb.widgets[index].model.sharedModel.setSource("name = input('Who? ')\\nprint('hi', name)");
          nb.activeCellIndex = index;
          nb.deselectAll();
          void window.jupyterapp.commands.execute('notebook:run-cell');
        }"""
    )
    for page in pages:
        page.wait_for_selector(".anode-stdin:has-text('Who?')")
    # A tab opened while input() waits shows the prompt too.
    carol = open_doc(browser, lab)
    carol.wait_for_selector(".anode-stdin:has-text('Who?')")
    pages = (alice, bob, carol)
    bob.locator(".anode-stdin input").fill("Bob")
    bob.locator(".anode-stdin input").press("Enter")
    nb = nb_id(alice)
    try:
        for page in pages:
            wait_until(lambda p=page: "hi Bob" in outputs_text(p, "b"), "the answer's output")
            page.wait_for_selector(".anode-stdin", state="detached")
    except AssertionError as err:
        raise AssertionError(f"{err}\n{input_story(lab, nb, pages)}") from None
    replies = [e for e in events(lab, nb) if e["name"] == "v1.InputReplied"]
    assert replies and replies[-1]["user"] == username(bob)
    carol.context.close()


def input_story(lab: Server, nb: str, pages: Any) -> str:
    """What the log and each page hold, for a failure to explain itself."""
    names = {"ExecutionRequested", "ExecutionAssigned", "ExecutionStarted", "InputRequested"}
    names |= {
        "InputReplied",
        "ExecutionCompleted",
        "ExecutionFailed",
        "RuntimeSessionStarted",
        "OutputAppended",
    }
    names |= {"RuntimeSessionEnded", "ExecutionCancelled"}
    lines = [
        f"{e['seq']} {e['name']} {e['user']} {json.dumps(e['args'])[:160]}"
        for e in events(lab, nb)
        if e["name"].removeprefix("v1.") in names
    ]
    state = lab.state(nb)
    lines += [f"runtime {json.dumps(rt)[:300]}" for rt in state.get("runtimes", [])]
    for i, page in enumerate(pages):
        forms = page.evaluate(
            """() => Array.from(document.querySelectorAll('.anode-stdin input'))
                 .map(i => [i.value, i.disabled])"""
        )
        lines.append(f"page {i}: output {outputs_text(page, 'b')!r}, prompts {forms}")
    return "\n".join(lines)


def test_undo_is_per_person(lab: Server, pages: Any) -> None:
    """Ctrl+Z in A takes back A's typing, never B's (the editor's undo tracks its own origin)."""
    alice, bob = pages
    before = source(alice, "a")
    alice.locator(".jp-Notebook .jp-Cell .cm-content").first.click()
    alice.keyboard.press("End")
    alice.keyboard.type(" #A", delay=20)
    wait_until(lambda: source(bob, "a") == before + " #A", "bob to see alice's keys")
    time.sleep(0.6)  # past the editor's grouping of edits
    bob.locator(".jp-Notebook .jp-Cell .cm-content").first.click()
    bob.keyboard.press("Control+Home")
    bob.keyboard.type("#B ", delay=20)
    wait_until(lambda: source(alice, "a") == "#B " + before + " #A", "alice to see bob's keys")
    alice.keyboard.press("Control+z")
    want = "#B " + before
    wait_until(lambda: source(alice, "a") == want == source(bob, "a"), "alice's undo in both")
    assert wait_until(lambda: lab.state(nb_id(alice))["cells"][0]["source"] == want, "the log")

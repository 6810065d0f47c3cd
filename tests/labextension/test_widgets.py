"""ipywidgets in JupyterLab on a notebook Anode serves, in Chromium, two people.

The slider renders (its model from the kernel's comm_open, its view from the
document, never a view before its model), a drag in one tab reaches Python and
moves the slider in the other, the file saves the widget state, and a reload
shows the widget again.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from nbformat.v4 import new_code_cell, new_notebook

from ..server.real import Server
from .conftest import open_notebook, run_cell, serve_lab, wait_for_kernel
from .test_document import nb_id, outputs_text, username, wait_until

PATH = "widgets.ipynb"
CELLS = {
    "slider": "import ipywidgets as w\ns = w.IntSlider(value=10, min=0, max=100)\ns",
    "show": "print('value', s.value)",
    "interact": "import ipywidgets as w\nw.interact(lambda n=3: print('square', n * n), n=(0, 9))",
}


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    nb = new_notebook(cells=[new_code_cell(src, id=cid) for cid, src in CELLS.items()])
    yield from serve_lab(tmp_path_factory, {PATH: nb})


def readout(page: Any, cell_id: str) -> str:
    """The slider's own number as the tab shows it ('' if no slider is drawn)."""
    return str(
        page.evaluate(
            """id => {
              const nb = window.jupyterapp.shell.currentWidget.content;
              const cell = nb.widgets.find(c => c.model.id === id);
              const r = cell && cell.node.querySelector('.widget-slider .widget-readout');
              return r ? r.innerText.trim() : '';
            }""",
            cell_id,
        )
    )


def drag_to(page: Any, cell_id: str, fraction: float) -> None:
    """Drag the slider's handle with the mouse to `fraction` of its track."""
    track = page.locator(".jp-OutputArea .widget-slider .noUi-target").first
    handle = page.locator(".jp-OutputArea .widget-slider .noUi-handle").first
    box, grip = track.bounding_box(), handle.bounding_box()
    page.mouse.move(grip["x"] + grip["width"] / 2, grip["y"] + grip["height"] / 2)
    page.mouse.down()
    y = box["y"] + box["height"] / 2
    target = box["x"] + box["width"] * fraction
    start = grip["x"] + grip["width"] / 2
    for i in range(1, 21):  # a drag, not a jump: many moves, as a hand makes
        page.mouse.move(start + (target - start) * i / 20, y)
        page.wait_for_timeout(15)
    page.mouse.up()


def trust(page: Any) -> None:
    """JupyterLab's "Trust Notebook", confirmed: for this tab only (nothing is written)."""
    page.evaluate("() => { void window.jupyterapp.commands.execute('notebook:trust'); }")
    page.locator(".jp-Dialog .jp-mod-accept").click()


def no_widget_errors(page: Any) -> None:
    text = page.evaluate("() => document.body.innerText")
    assert "Error displaying widget" not in text, text[-2000:]


def test_a_slider_renders_moves_for_everyone_and_survives_a_reload(
    lab: Server, browser: Any
) -> None:
    alice, bob = open_notebook(browser, lab, PATH), open_notebook(browser, lab, PATH)
    run_cell(alice, "slider")
    # Alice ran it: her tab renders it. Bob's shows what an untrusted notebook shows
    # (someone else's code made it) until he trusts the notebook.
    wait_until(lambda: readout(alice, "slider") == "10", "the slider in alice's tab")
    wait_until(lambda: "IntSlider(value=10)" in outputs_text(bob, "slider"), "bob's text view")
    assert readout(bob, "slider") == ""
    head = lab.call(f"/anode/api/notebooks/{nb_id(bob)}")[1]["head"]
    trust(bob)
    wait_until(lambda: readout(bob, "slider") == "10", "the slider in bob's tab, trusted")
    # Trust is this tab's alone: nothing of it reached the log (no metadata, no outputs).
    bobs = username(bob)
    events = lab.call(f"/anode/api/notebooks/{nb_id(bob)}/events?after={head}")[1]["events"]
    assert not [e for e in events if e["user"] == bobs], events
    for page in (alice, bob):
        no_widget_errors(page)

    drag_to(alice, "slider", 0.75)
    moved = wait_until(lambda: readout(alice, "slider") not in ("", "10") and readout(alice, "slider"), "alice's slider to move")
    # Bob's slider follows (ipywidgets' echo from Python, through the log).
    wait_until(lambda: readout(bob, "slider") == readout(alice, "slider"), "bob's slider to follow", 30)

    run_cell(bob, "show")
    final = readout(alice, "slider")
    wait_until(lambda: f"value {final}" in outputs_text(bob, "show"), "print(s.value) to show the drag")
    assert int(final) >= int(moved)

    # The file holds the widget's last state, as JupyterLab saves it.
    def saved() -> Any:
        nb = json.loads((Path(lab.root) / PATH).read_text())
        state = nb["metadata"].get("widgets", {}).get("application/vnd.jupyter.widget-state+json")
        models = state["state"].values() if state else []
        return [m for m in models if m["model_name"] == "IntSliderModel" and
                m["state"]["value"] == int(final)]

    wait_until(saved, "the widget state in the file")

    alice.reload()
    wait_for_kernel(alice)
    wait_until(lambda: readout(alice, "slider") == final, "the slider after a reload", 60)
    no_widget_errors(alice)
    alice.context.close()
    bob.context.close()


def test_interact_redraws_its_output_for_everyone(lab: Server, browser: Any) -> None:
    alice, bob = open_notebook(browser, lab, PATH), open_notebook(browser, lab, PATH)
    trust(bob)
    run_cell(alice, "interact")
    for page in (alice, bob):
        wait_until(lambda p=page: "square 9" in outputs_text(p, "interact"), "interact's first output")
    drag_to(alice, "interact", 1.0)
    for page in (alice, bob):
        wait_until(lambda p=page: "square 81" in outputs_text(p, "interact"), "interact's output after the drag")
    no_widget_errors(alice)
    no_widget_errors(bob)
    alice.context.close()
    bob.context.close()

"""Is the page responsive with the Anode panel open while a notebook streams?

A notebook of 200 cells, each printing 50 lines (10,000 lines in all), is run
with JupyterLab's "Run All" on anode-pyodide in Debian's Chromium, once with the
Anode panel open and once with the right sidebar collapsed (the anchor), in the
same page and run. Chromium's Long Tasks API gives every main-thread task over
50 ms; we report the longest, their count and their sum, and the wall time until
the log holds the last execution as completed.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import nbformat
from nbformat.v4 import new_code_cell, new_notebook

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.labextension.conftest import (  # noqa: E402
    CHROMIUM,
    SHOW_PANEL,
    lab_options,
    wait_for_kernel,
)
from tests.server.real import TOKEN, Server  # noqa: E402

OBSERVE = """() => {
  window.__longTasks = [];
  if (!window.__observer) {
    window.__observer = new PerformanceObserver(list => {
      for (const e of list.getEntries()) window.__longTasks.push(e.duration);
    });
    window.__observer.observe({ type: 'longtask' });
  }
}"""


def notebook(cells: int, lines: int) -> Any:
    code = "for i in range({n}):\n    print('cell {c} line', i, 'x' * 60)"
    nb = new_notebook(cells=[new_code_cell(code.format(n=lines, c=c)) for c in range(cells)])
    nb.metadata["kernelspec"] = {"name": "anode-pyodide", "display_name": "Python (Anode, Pyodide)"}
    return nb


def run_all(page: Any, lab: Server, nb_id: str, cells: int) -> dict[str, float]:
    before = len(lab.state(nb_id)["executions"])
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:clear-all-cell-outputs')")
    page.evaluate(OBSERVE)
    t0 = time.perf_counter()
    page.evaluate("() => { void window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
    while True:
        rows = lab.state(nb_id)["executions"][before:]
        if len(rows) >= cells and all(r["state"] == "completed" for r in rows):
            break
        time.sleep(0.5)
    wall = time.perf_counter() - t0
    page.wait_for_timeout(1000)  # let the page paint what arrived last
    tasks = page.evaluate("() => window.__longTasks")
    return {
        "wall_s": round(wall, 2),
        "longest_task_ms": round(max(tasks, default=0.0), 1),
        "long_tasks": len(tasks),
        "long_task_total_ms": round(sum(tasks), 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cells", type=int, default=200)
    parser.add_argument("--lines", type=int, default=50, help="lines printed by each cell")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    root = Path(tempfile.mkdtemp(prefix="anode-bench-lab-"))
    nbformat.write(notebook(args.cells, args.lines), root / "stream.ipynb")
    settings = Path(tempfile.mkdtemp(prefix="anode-bench-settings-"))
    lab = Server(root, *lab_options(settings), app="jupyterlab").start(180)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1500, "height": 950})
            page.set_default_timeout(300_000)
            page.goto(f"{lab.url}/lab/tree/stream.ipynb?token={TOKEN}&reset")
            wait_for_kernel(page)
            page.evaluate(SHOW_PANEL)
            page.wait_for_selector("#anode-panel .anode-status[data-status='live']")
            nb_id = str(page.get_attribute("#anode-panel", "data-notebook-id"))
            run_all(page, lab, nb_id, args.cells)  # warm-up: boots the runtime, JITs the page
            opened = run_all(page, lab, nb_id, args.cells)
            page.evaluate("() => window.jupyterapp.shell.collapseRight()")
            closed = run_all(page, lab, nb_id, args.cells)
            browser.close()
    finally:
        lab.stop()
    for name, fig in (("panel open", opened), ("panel closed", closed)):
        print(f"{name:>13}: {fig}")
    result = {
        "bench": "lab",
        "cells": args.cells,
        "lines": args.cells * args.lines,
        "panel_open": opened,
        "panel_closed": closed,
        "anchor": "the same page with the panel closed",
        "ratio": round(opened["longest_task_ms"] / max(closed["longest_task_ms"], 1.0), 2),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

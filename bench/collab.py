"""The notebook as the log, in JupyterLab, against jupyter-collaboration in the same run.

Two browser contexts of Debian's Chromium on one notebook, for each system:

- keystroke latency: a key typed in A until B's shared model has it (p50, p99),
  one key every 60 ms; anchor: jupyter-collaboration's `jupyter lab`;
- a 100,000-line print run in A until B's output has its last line; anchor:
  ipykernel in one browser (jupyter-collaboration's lab, its python3 kernel);
- opening a 500-cell notebook with outputs until its last cell is rendered
  (the second open: the first makes the log / the YStore); anchor:
  jupyter-collaboration;
- at the store: the log's size after 10,000 keystrokes (one push each, Yjs
  updates as a browser makes them) and the time to open that notebook's
  document from it; anchor: the same updates as rows of a raw SQLite table.

jupyter-collaboration runs from a venv of its own, made by this bench
(~/.cache/anode/bench-collab-venv). `--quick` skips the browsers.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import nbformat
from nbformat.v4 import new_code_cell, new_notebook, new_output

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.labextension.conftest import CHROMIUM, lab_options, wait_for_kernel  # noqa: E402
from tests.server.real import TOKEN, Server  # noqa: E402

ANCHOR_VENV = Path.home() / ".cache" / "anode" / "bench-collab-venv"
ANODE_KERNEL = {"name": "anode-pyodide", "display_name": "Python (Anode, Pyodide)"}
IPYKERNEL = {"name": "python3", "display_name": "Python 3 (ipykernel)"}

WATCH = """() => {
  const nb = window.jupyterapp.shell.currentWidget.content.model.sharedModel;
  window.__arrived = {};
  nb.cells[0].changed.connect(() => {
    const n = nb.cells[0].getSource().length;
    if (!(n in window.__arrived)) window.__arrived[n] = performance.timeOrigin + performance.now();
  });
}"""
SEND = """() => {
  window.__sent = {};
  const nb = window.jupyterapp.shell.currentWidget.content.model.sharedModel;
  nb.cells[0].changed.connect(() => {
    const n = nb.cells[0].getSource().length;
    if (!(n in window.__sent)) window.__sent[n] = performance.timeOrigin + performance.now();
  });
}"""


# --- the anchor's environment -------------------------------------------------------


def anchor_python() -> Path:
    """jupyter-collaboration and ipykernel in a venv of their own (made once)."""
    py = ANCHOR_VENV / "bin" / "python"
    stamp = ANCHOR_VENV / ".ready"
    if not stamp.exists():
        subprocess.run([sys.executable, "-m", "venv", str(ANCHOR_VENV)], check=True)
        pkgs = ["jupyterlab>=4.5,<5", "jupyter-collaboration>=4", "ipykernel"]
        subprocess.run([str(py), "-m", "pip", "install", "-q", *pkgs], check=True)
        stamp.write_text("ok\n")
    return py


class AnchorLab(Server):
    """`jupyter lab` with jupyter-collaboration, from its own venv."""

    def __init__(self, root: Path, python: Path, *options: str) -> None:
        super().__init__(root, *options, app="jupyterlab")
        self.python = python

    def start(self, timeout: float = 180) -> AnchorLab:
        cmd = [
            str(self.python),
            "-m",
            "jupyterlab",
            f"--port={self.port}",
            "--port-retries=0",
            "--no-browser",
            f"--ServerApp.root_dir={self.root}",
            f"--IdentityProvider.token={TOKEN}",
            *self.options,
        ]
        if os.geteuid() == 0:
            cmd.append("--allow-root")
        # in its root: jupyter-collaboration keeps its YStore in the working directory
        self.proc = subprocess.Popen(
            cmd, cwd=self.root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                status, _ = self.call("/api/status")
                if status == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.3)
        raise RuntimeError("the anchor's jupyter lab did not start")


# --- notebooks ------------------------------------------------------------------------


def write(root: Path, name: str, cells: list[Any], kernel: dict[str, str]) -> None:
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {**kernel, "language": "python"}
    nbformat.write(nb, root / name)


def notebooks(root: Path, kernel: dict[str, str]) -> None:
    write(root, "keys.ipynb", [new_code_cell("", id="k")], kernel)
    code = "for i in range(100000):\n    print(i)"
    write(root, "print.ipynb", [new_code_cell(code, id="p")], kernel)
    big = []
    for i in range(500):
        out = new_output("stream", name="stdout", text=f"cell {i}\n" * 3)
        big.append(new_code_cell(f"print('cell {i}')", id=f"c{i}", outputs=[out]))
    write(root, "big.ipynb", big, kernel)


# --- in the browser ---------------------------------------------------------------------


def open_page(browser: Any, lab: Server, path: str, kernel: bool = True) -> Any:
    page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
    page.set_default_timeout(300_000)
    page.goto(f"{lab.url}/lab/tree/{path}?token={TOKEN}&reset")
    if kernel:
        wait_for_kernel(page)
    page.wait_for_function(
        "() => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;"
        " return w && w.context && w.context.isReady; }"
    )
    return page


def keystrokes(browser: Any, lab: Server, n: int) -> dict[str, float]:
    a = open_page(browser, lab, "keys.ipynb", kernel=False)
    b = open_page(browser, lab, "keys.ipynb", kernel=False)
    a.evaluate(SEND)
    b.evaluate(WATCH)
    a.locator(".jp-Notebook .jp-Cell .cm-content").first.click()
    for _ in range(20):  # warm-up
        a.keyboard.type("w")
        a.wait_for_timeout(60)
    a.evaluate("() => { window.__sent = {}; }")
    b.evaluate("() => { window.__arrived = {}; }")
    for _ in range(n):
        a.keyboard.type("x")
        a.wait_for_timeout(60)
    a.wait_for_timeout(1500)
    sent = a.evaluate("() => window.__sent")
    arrived = b.evaluate("() => window.__arrived")
    lat = sorted(arrived[k] - sent[k] for k in sent if k in arrived)
    a.context.close()
    b.context.close()
    return {
        "keys": n,
        "arrived": len(lat),
        "p50_ms": round(statistics.median(lat), 1),
        "p99_ms": round(lat[min(len(lat) - 1, int(len(lat) * 0.99))], 1),
    }


LAST_LINE = """() => {
  const cell = window.jupyterapp.shell.currentWidget.content.widgets[0];
  const out = cell.model.outputs;
  if (!out.length) return false;
  const text = out.get(out.length - 1).toJSON().text;
  const s = Array.isArray(text) ? text.join('') : String(text || '');
  return s.endsWith('99999\\n') && cell.node.querySelector('.jp-OutputArea-output') !== null;
}"""


def big_print(browser: Any, lab: Server, viewers: int) -> float:
    """Seconds from Run in A until the last viewer's output has the last line."""
    pages = [open_page(browser, lab, "print.ipynb") for _ in range(viewers)]
    a = pages[0]
    a.evaluate("() => window.jupyterapp.commands.execute('notebook:clear-all-cell-outputs')")
    a.wait_for_timeout(500)
    t0 = time.perf_counter()
    a.evaluate("() => { void window.jupyterapp.commands.execute('notebook:run-cell'); }")
    pages[-1].wait_for_function(LAST_LINE, polling=50)
    took = time.perf_counter() - t0
    for page in pages:
        page.context.close()
    return round(took, 2)


OPENED = """() => {
  const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  if (!w || !w.content || !w.content.widgets || w.content.widgets.length !== 500) return false;
  const last = w.content.widgets[499];
  return last.node.querySelector('.jp-OutputArea-output') !== null && last.inViewport !== undefined;
}"""


def open_big(browser: Any, lab: Server) -> float:
    first = open_page(browser, lab, "big.ipynb", kernel=False)  # makes the log / the YStore
    first.wait_for_function(OPENED, polling=50)
    first.context.close()
    page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
    page.set_default_timeout(300_000)
    t0 = time.perf_counter()
    page.goto(f"{lab.url}/lab/tree/big.ipynb?token={TOKEN}&reset")
    page.wait_for_function(OPENED, polling=50)
    # the last cell rendered: scroll to it and wait for its output to be painted
    page.evaluate(
        "() => { const nb = window.jupyterapp.shell.currentWidget.content;"
        " nb.activeCellIndex = 499; nb.scrollToItem(499); }"
    )
    page.wait_for_function(
        "() => { const c = window.jupyterapp.shell.currentWidget.content.widgets[499];"
        " const r = c.node.getBoundingClientRect(); return r.height > 0 &&"
        " c.node.querySelector('.jp-OutputArea-output').innerText.includes('cell 499'); }",
        polling=50,
    )
    took = time.perf_counter() - t0
    page.context.close()
    return round(took, 2)


# --- at the store ------------------------------------------------------------------------


def store_figures(keys: int) -> dict[str, Any]:
    import pycrdt as y

    from anode_ext.log import Identity, Store
    from anode_ext.log.document import encode_update

    who = Identity("alice", "a")
    tmp = Path(tempfile.mkdtemp(prefix="anode-bench-collab-"))
    path = tmp / "typed.anode"
    updates: list[bytes] = []
    with Store.open(path, create=True, document=True) as store:
        cell = {"cell_id": "c", "cell_type": "code", "source": "", "position": "V"}
        store.push([{"id": uuid.uuid4().hex, "name": "v1.CellCreated", "args": cell}], who)
        store.sync_document(who)
        tab = y.Doc()
        tab.apply_update(store.document.encode())  # type: ignore[union-attr]
        text = tab.get("cells", type=y.Array)[0]["source"]
        t0 = time.perf_counter()
        for i in range(keys):
            before = tab.get_state()
            text.insert(len(text), "\n" if i % 60 == 59 else "x")
            update = tab.get_update(before)
            updates.append(update)
            event = {"update": encode_update(update)}
            # ids as the labextension makes them (16 random bytes, base64url)
            push = {"id": secrets.token_urlsafe(16), "name": "v1.DocumentUpdated", "args": event}
            store.push([push], who)
        push_s = time.perf_counter() - t0
        store.checkpoint_wal()
    size = path.stat().st_size
    t0 = time.perf_counter()
    with Store.open(path, document=True) as store:
        assert store.document is not None
        store.document.encode()
        assert len(store.state.t.cells["c"].source) == keys
    open_s = time.perf_counter() - t0
    # the anchor: the same updates as rows of a table (what a YStore keeps)
    raw = tmp / "raw.sqlite"
    db = sqlite3.connect(raw)
    db.execute("CREATE TABLE updates (id INTEGER PRIMARY KEY, at REAL, update_ BLOB)")
    t0 = time.perf_counter()
    for u in updates:
        db.execute("INSERT INTO updates (at, update_) VALUES (?, ?)", (time.time(), u))
        db.commit()
    raw_push_s = time.perf_counter() - t0
    db.close()
    t0 = time.perf_counter()
    doc = y.Doc()
    db = sqlite3.connect(raw)
    for (u,) in db.execute("SELECT update_ FROM updates ORDER BY id"):
        doc.apply_update(u)
    db.close()
    raw_open_s = time.perf_counter() - t0
    return {
        "keystrokes": keys,
        "log_bytes": size,
        "log_open_s": round(open_s, 3),
        "push_ms_per_key": round(push_s / keys * 1000, 3),
        "raw_sqlite_bytes": raw.stat().st_size,
        "raw_sqlite_open_s": round(raw_open_s, 3),
        "raw_sqlite_ms_per_key": round(raw_push_s / keys * 1000, 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keys", type=int, default=200, help="keystrokes timed in the browser")
    parser.add_argument("--typed", type=int, default=10_000, help="keystrokes for the log size")
    parser.add_argument("--quick", action="store_true", help="the store figures only")
    parser.add_argument(
        "--steps", default="keystroke,print,open", help="browser steps to run (comma-separated)"
    )
    args = parser.parse_args()
    result: dict[str, Any] = {"bench": "collab", "store": store_figures(args.typed)}
    print("store:", result["store"], flush=True)
    if not args.quick:
        from playwright.sync_api import sync_playwright

        python = anchor_python()
        ours_root = Path(tempfile.mkdtemp(prefix="anode-bench-ours-"))
        theirs_root = Path(tempfile.mkdtemp(prefix="anode-bench-theirs-"))
        notebooks(ours_root, ANODE_KERNEL)
        notebooks(theirs_root, IPYKERNEL)
        ours = Server(ours_root, *lab_options(Path(tempfile.mkdtemp())), app="jupyterlab")
        theirs = AnchorLab(theirs_root, python, *lab_options(Path(tempfile.mkdtemp())))
        ours.start(180)
        theirs.start(180)
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
                steps = args.steps.split(",")
                for name, lab in (("anode", ours), ("jupyter_collaboration", theirs)):
                    if "keystroke" in steps:
                        k = keystrokes(browser, lab, args.keys)
                        result.setdefault("keystroke", {})[name] = k
                        print(name, "keystroke", k, flush=True)
                if "print" in steps:
                    result["print_100k_s"] = {
                        "anode_two_browsers": big_print(browser, ours, 2),
                        "ipykernel_one_browser": big_print(browser, theirs, 1),
                    }
                    print("print", result["print_100k_s"], flush=True)
                if "open" in steps:
                    result["open_500_cells_s"] = {
                        "anode": open_big(browser, ours),
                        "jupyter_collaboration": open_big(browser, theirs),
                    }
                    print("open", result["open_500_cells_s"], flush=True)
                browser.close()
        finally:
            ours.stop()
            theirs.stop()
        if "keystroke" in result:
            k = result["keystroke"]
            result["ratio"] = round(
                k["anode"]["p50_ms"] / max(k["jupyter_collaboration"]["p50_ms"], 0.1), 2
            )
            result["anchor"] = "jupyter-collaboration (keystroke p50)"
        else:
            result["anchor"] = "see the figures: each names its anchor"
            result["ratio"] = None
    else:
        s = result["store"]
        result["anchor"] = "raw SQLite rows of the same updates (bytes)"
        result["ratio"] = round(s["log_bytes"] / max(s["raw_sqlite_bytes"], 1), 2)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Dragging an ipywidgets slider in JupyterLab, two people: what it costs and how fast B sees it.

For each system, two Chromium contexts (A and B) on one notebook whose cell shows
`IntSlider(0..100)`. A drags the handle across the whole track with the mouse (60
moves, one every 16 ms, as a hand at 60 Hz); both tabs record when their slider's
readout first shows each value.

- latency: for every value both tabs showed, B's time minus A's (p50, p95), and
  `settle_ms`, from A showing its final value to B showing it;
- cost: what one drag adds to the notebook's log, by kind (ours), and the comm
  messages A's tab sent to its kernel (both systems).

Ours: `jupyter lab` with Anode (anode-pyodide, the widget's traffic through the
log). Anchor: ipykernel with jupyter-collaboration's `jupyter lab` (both tabs on
one kernel: B's slider follows ipywidgets' echo on iopub), from the venv
bench/collab.py makes (ipywidgets added to it here).

Last line: {"bench": "widgets", ..., "anchor": "ipykernel+jupyter-collaboration",
"ratio": settle_ms ours / anchor's}.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from collab import ANODE_KERNEL, IPYKERNEL, AnchorLab, anchor_python, open_page, write  # noqa: E402
from nbformat.v4 import new_code_cell  # noqa: E402

from tests.labextension.conftest import CHROMIUM, lab_options  # noqa: E402
from tests.labextension.test_document import wait_until  # noqa: E402
from tests.server.real import Server  # noqa: E402

CELL = "import ipywidgets as w\ns = w.IntSlider(value=0, min=0, max=100)\ns"
MOVES = 60

READOUT = ".jp-OutputArea .widget-slider .widget-readout"
WATCH = """() => {
  window.__shown = {};
  const r = document.querySelector('READOUT');
  const note = () => {
    const v = r.innerText.trim();
    if (!(v in window.__shown)) window.__shown[v] = performance.timeOrigin + performance.now();
  };
  new MutationObserver(note).observe(r, {childList: true, characterData: true, subtree: true});
  note();
}""".replace("READOUT", READOUT)


def with_widgets(python: Path) -> Path:
    """The anchor's venv with ipywidgets (and JupyterLab's widget manager)."""
    probe = subprocess.run([str(python), "-c", "import ipywidgets, jupyterlab_widgets"])
    if probe.returncode != 0:
        pkgs = ["ipywidgets>=8.1", "jupyterlab_widgets>=3.0.15"]
        subprocess.run([str(python), "-m", "pip", "install", "-q", *pkgs], check=True)
    return python


def readout(page: Any) -> str:
    return str(
        page.evaluate(
            f"() => {{ const r = document.querySelector('{READOUT}');"
            " return r ? r.innerText.trim() : ''; }"
        )
    )


def trust(page: Any) -> None:
    """'Trust Notebook', confirmed when JupyterLab asks (it does not when all is trusted)."""
    page.evaluate("() => { void window.jupyterapp.commands.execute('notebook:trust'); }")
    try:
        page.locator(".jp-Dialog .jp-mod-accept").click(timeout=3000)
    except Exception:
        pass


def drag(page: Any) -> None:
    track = page.locator(".jp-OutputArea .widget-slider .noUi-target").first
    handle = page.locator(".jp-OutputArea .widget-slider .noUi-handle").first
    box, grip = track.bounding_box(), handle.bounding_box()
    x0, y = grip["x"] + grip["width"] / 2, grip["y"] + grip["height"] / 2
    x1 = box["x"] + box["width"] + 20  # past the end: the whole range
    page.mouse.move(x0, y)
    page.mouse.down()
    for i in range(1, MOVES + 1):
        page.mouse.move(x0 + (x1 - x0) * i / MOVES, y)
        page.wait_for_timeout(16)
    page.mouse.up()


def one_drag(browser: Any, lab: Server, path: str, nb_id: str | None) -> dict[str, Any]:
    a = open_page(browser, lab, path)
    b = open_page(browser, lab, path)
    sent: list[str] = []
    a.on("websocket", lambda ws: ws.on("framesent", lambda f: sent.append(str(f))))
    a.evaluate("() => { void window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
    wait_until(lambda: readout(a) == "0", "the slider in A", 120)
    trust(b)
    wait_until(lambda: readout(b) == "0", "the slider in B", 120)
    a.wait_for_timeout(1000)
    # Reconnect A's kernel websocket listener: only frames of the drag count.
    a.reload()
    wait_until(lambda: readout(a) == "0", "the slider in A after a reload", 120)
    a.wait_for_timeout(1500)
    a.evaluate(WATCH)
    b.evaluate(WATCH)
    head = lab.call(f"/anode/api/notebooks/{nb_id}")[1]["head"] if nb_id else 0
    sent.clear()
    drag(a)
    final = wait_until(lambda: readout(a) if readout(a) == "100" else "", "A at the end", 10)
    wait_until(lambda: readout(b) == final, "B at the end", 30)
    a.wait_for_timeout(1000)
    shown_a = a.evaluate("() => window.__shown")
    shown_b = b.evaluate("() => window.__shown")
    lat = sorted(shown_b[v] - shown_a[v] for v in shown_a if v in shown_b and v != "0")
    comm_msgs = sum(1 for f in sent if '"comm_msg"' in f)
    out: dict[str, Any] = {
        "values_shown_in_a": len(shown_a) - 1,
        "values_shown_in_b": len(shown_b) - 1,
        "p50_ms": round(statistics.median(lat), 1),
        "p95_ms": round(lat[min(len(lat) - 1, int(len(lat) * 0.95))], 1),
        "settle_ms": round(shown_b[final] - shown_a[final], 1),
        "comm_msgs_sent_by_a": comm_msgs,
    }
    if nb_id:
        events = lab.call(f"/anode/api/notebooks/{nb_id}/events?after={head}")[1]["events"]
        kinds = Counter(
            e["name"].removeprefix("v1.")
            + (f".{e['args']['origin']}" if "origin" in e["args"] else "")
            for e in events
        )
        out["log_events"] = len(events)
        out["log_bytes"] = sum(len(json.dumps(e)) for e in events)
        out["log_events_by_kind"] = dict(sorted(kinds.items()))
    a.context.close()
    b.context.close()
    return out


def main() -> int:
    from playwright.sync_api import sync_playwright

    anchor_py = with_widgets(anchor_python())
    ours_root = Path(tempfile.mkdtemp(prefix="anode-bench-widgets-"))
    anchor_root = Path(tempfile.mkdtemp(prefix="anode-bench-widgets-anchor-"))
    write(ours_root, "slider.ipynb", [new_code_cell(CELL, id="s")], ANODE_KERNEL)
    write(anchor_root, "slider.ipynb", [new_code_cell(CELL, id="s")], IPYKERNEL)
    ours = Server(ours_root, *lab_options(ours_root / ".settings"), app="jupyterlab")
    anchor = AnchorLab(anchor_root, anchor_py, *lab_options(anchor_root / ".settings"))
    results: dict[str, Any] = {}
    with sync_playwright() as p:
        args = ["--no-sandbox"]
        browser = p.chromium.launch(executable_path=CHROMIUM, args=args)
        try:
            ours.start(timeout=180)
            try:
                a = open_page(browser, ours, "slider.ipynb")
                nb_id = a.get_attribute("[data-anode-notebook-id]", "data-anode-notebook-id")
                a.context.close()
                results["ours"] = one_drag(browser, ours, "slider.ipynb", nb_id)
            finally:
                ours.stop()
            anchor.start()
            try:
                results["anchor"] = one_drag(browser, anchor, "slider.ipynb", None)
            finally:
                anchor.stop()
        finally:
            browser.close()
    print(json.dumps(results, indent=1))
    line = {
        "bench": "widgets",
        "moves": MOVES,
        "ours": results["ours"],
        "anchor_figures": results["anchor"],
        "anchor": "ipykernel+jupyter-collaboration",
        "ratio": round(results["ours"]["settle_ms"] / max(results["anchor"]["settle_ms"], 0.1), 2),
    }
    print(json.dumps(line))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

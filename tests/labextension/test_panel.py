"""Two collaborators in two browser contexts on one notebook, in Debian's Chromium.

Alice runs cells in JupyterLab (Run queues them in the document's log, and
the anode-pyodide kernel, which joins that log, runs them); Bob watches the
Anode panel, cancels a pending execution that a third collaborator queued
over REST, answers Alice's input() and scrolls the timeline back to an
earlier source. Every figure the panel shows is checked
against the server's own state of the log.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from ..server.real import Server
from .conftest import SHOW_PANEL, open_notebook, run_cell, save_panel


@pytest.fixture(scope="module")
def pages(lab: Server, browser: Any) -> Iterator[tuple[Any, Any]]:
    alice = open_notebook(browser, lab)
    bob = open_notebook(browser, lab)
    yield alice, bob
    alice.context.close()
    bob.context.close()


def notebook_id(page: Any) -> str:
    return str(page.get_attribute("#anode-panel", "data-notebook-id"))


def row(page: Any, execution_id: str) -> Any:
    return page.locator(f"#anode-panel .anode-row[data-execution-id='{execution_id}']")


def wait_state(page: Any, execution_id: str, state: str) -> None:
    selector = f"#anode-panel .anode-row[data-execution-id='{execution_id}'][data-state='{state}']"
    try:
        page.wait_for_selector(selector, timeout=60_000)
    except Exception:
        rows = page.eval_on_selector_all(
            "#anode-panel .anode-row", "rs => rs.map(r => [r.dataset.executionId, r.dataset.state])"
        )
        status = page.get_attribute("#anode-panel .anode-status", "data-status")
        raise AssertionError(f"{execution_id} never {state}; panel ({status}): {rows}") from None


def executions(lab: Server, nb: str) -> list[dict[str, Any]]:
    return list(lab.state(nb)["executions"])


def last_for_cell(lab: Server, nb: str, cell_id: str, seen: int = 0) -> dict[str, Any]:
    """The newest execution of a cell once the log has more than `seen` of them."""
    deadline = time.monotonic() + 120
    while True:
        rows = [e for e in executions(lab, nb) if e["cell_id"] == cell_id]
        if len(rows) > seen:
            return rows[-1]
        assert time.monotonic() < deadline, f"no execution of {cell_id}: {executions(lab, nb)}"
        time.sleep(0.2)


def request(lab: Server, nb: str, code: str) -> str:
    x = uuid.uuid4().hex
    event = {"id": uuid.uuid4().hex, "name": "v1.ExecutionRequested"}
    event["args"] = {"execution_id": x, "cell_id": None, "code": code}  # type: ignore[assignment]
    status, answer = lab.call(f"/anode/api/notebooks/{nb}/events", {"events": [event]})
    assert status == 200, answer
    return x


def test_both_panels_follow_the_same_log(lab: Server, pages: tuple[Any, Any]) -> None:
    alice, bob = pages
    nb = notebook_id(alice)
    assert nb == notebook_id(bob)
    assert bob.locator(".lm-TabBar-tab[data-id='anode-panel']").inner_text().strip() == "Anode"
    run_cell(alice, "x")
    x = last_for_cell(lab, nb, "x")["id"]
    for page in pages:
        wait_state(page, x, "completed")
    runtime = bob.locator("#anode-panel .anode-runtime-row[data-state='idle']")
    assert runtime.count() == 1


def test_the_queue_moves_live_and_a_pending_execution_is_cancelled(
    lab: Server, pages: tuple[Any, Any]
) -> None:
    alice, bob = pages
    nb = notebook_id(alice)
    run_cell(alice, "slow")
    slow = last_for_cell(lab, nb, "slow")["id"]
    wait_state(bob, slow, "executing")
    # A third collaborator queues two more behind it, over REST.
    first = request(lab, nb, "print('queued 1')")
    second = request(lab, nb, "print('queued 2')")
    wait_state(bob, first, "pending")
    wait_state(bob, second, "pending")
    save_panel(bob, "queue")
    row(bob, first).locator("button[data-action='cancel']").click()
    for page in pages:
        wait_state(page, first, "cancelled")
        wait_state(page, slow, "completed")
        wait_state(page, second, "completed")
    by_id = {e["id"]: e for e in executions(lab, nb)}
    assert by_id[first]["state"] == "cancelled" and by_id[first]["started_at"] is None
    assert by_id[second]["status"] == "ok"
    assert (by_id[first]["reason"] or "").startswith("cancelled by ")


def test_input_is_answered_from_the_other_context(lab: Server, pages: tuple[Any, Any]) -> None:
    alice, bob = pages
    nb = notebook_id(alice)
    run_cell(alice, "ask")
    form = bob.locator("#anode-panel form.anode-input")
    form.wait_for()
    assert "Your name?" in form.inner_text()
    save_panel(bob, "input")
    form.locator("input[name='value']").fill("Bob")
    form.locator("button[type='submit']").click()
    ask = last_for_cell(lab, nb, "ask")["id"]
    wait_state(alice, ask, "completed")
    alice.wait_for_selector(".jp-OutputArea-output:has-text('hello Bob')")
    assert form.count() == 0
    # Run queues in the log (not through the kernel's channels): nothing in
    # Alice's JupyterLab waits for input, so she can go on running cells.
    alice.wait_for_function(
        "() => !window.jupyterapp.shell.currentWidget.sessionContext.pendingInput"
    )


def test_code_and_prompts_are_text_in_the_panel(lab: Server, pages: tuple[Any, Any]) -> None:
    """What collaborators write (code, input prompts) is shown as text: markup in
    it makes no element and runs nothing, in any viewer's panel."""
    alice, bob = pages
    nb = notebook_id(alice)
    code_tag = "<img src=x onerror=\"window.__pwned='code'\">"
    prompt_tag = "<img src=y onerror=\"window.__pwned='prompt'\">"
    x = request(lab, nb, f"# {code_tag}\nanswer = input({json.dumps(prompt_tag)})\nanswer")
    form = bob.locator(f"#anode-panel form.anode-input[data-execution-id='{x}']")
    form.wait_for()
    assert form.locator("label").inner_text() == prompt_tag
    assert row(bob, x).locator(".anode-code").inner_text() == f"# {code_tag}"
    assert code_tag in str(row(bob, x).get_attribute("title"))
    form.locator("input[name='value']").fill("<b>bold</b>")
    form.locator("button[type='submit']").click()
    wait_state(bob, x, "completed")
    for page in pages:
        wait_state(page, x, "completed")
        assert page.locator("#anode-panel img, #anode-panel b").count() == 0
        assert page.evaluate("() => window.__pwned") is None


def test_the_timeline_shows_an_earlier_source(lab: Server, pages: tuple[Any, Any]) -> None:
    alice, bob = pages
    nb = notebook_id(alice)
    seen = len([e for e in executions(lab, nb) if e["cell_id"] == "x"])
    run_cell(alice, "x", "x = 2\nx")
    x = last_for_cell(lab, nb, "x", seen)["id"]
    wait_state(bob, x, "completed")
    status, page = lab.call(f"/anode/api/notebooks/{nb}/events")
    assert status == 200
    # The edit reaches the log as a keystroke would (the document's update), before the run.
    edits = ("v1.CellSourceChanged", "v1.CellSourceEdited")
    changed = [e["seq"] for e in page["events"] if e["name"] in edits][-1]
    slider = bob.locator("#anode-panel .anode-timeline-slider")
    slider.fill(str(changed - 1))
    bob.wait_for_selector(f"#anode-panel[data-timeline-at='{changed - 1}']")
    source = bob.locator("#anode-panel .anode-timeline-cell[data-cell-id='x'] pre")
    assert source.inner_text() == "x = 1\nx"
    slider.fill(str(changed))
    bob.wait_for_selector(f"#anode-panel[data-timeline-at='{changed}']")
    assert source.inner_text() == "x = 2\nx"
    assert "CellSource" in bob.locator("#anode-panel .anode-timeline-event").inner_text()
    save_panel(bob, "timeline")
    bob.locator("#anode-panel .anode-timeline-live").click()
    assert source.count() == 0


def test_interrupt_and_restart_from_the_panel(lab: Server, pages: tuple[Any, Any]) -> None:
    alice, bob = pages
    nb = notebook_id(alice)
    seen = len([e for e in executions(lab, nb) if e["cell_id"] == "slow"])
    run_cell(alice, "slow")
    slow = last_for_cell(lab, nb, "slow", seen)["id"]
    wait_state(bob, slow, "executing")
    busy = bob.locator("#anode-panel .anode-runtime-row[data-state='busy']")
    busy.locator("button[data-action='interrupt']").click()
    wait_state(bob, slow, "completed")
    by_id = {e["id"]: e for e in executions(lab, nb)}
    assert by_id[slow]["status"] == "error"
    alice.wait_for_selector(".jp-OutputArea-output:has-text('KeyboardInterrupt')")

    (old,) = [r["session_id"] for r in lab.state(nb)["runtimes"] if r["state"] == "live"]
    idle = bob.locator(f"#anode-panel .anode-runtime-row[data-session-id='{old}']")
    idle.locator("button[data-action='restart']").click()
    ended = bob.locator(
        f"#anode-panel .anode-runtime-row[data-session-id='{old}'][data-state='ended']"
    )
    ended.wait_for()
    assert "restart requested" in ended.inner_text()
    # The next cell runs on a fresh session, with a clean namespace.
    seen = len([e for e in executions(lab, nb) if e["cell_id"] == "x"])
    run_cell(alice, "x", "'x' in globals()")
    x = last_for_cell(lab, nb, "x", seen)
    wait_state(bob, x["id"], "completed")
    x = next(e for e in executions(lab, nb) if e["id"] == x["id"])
    assert x["session_id"] != old
    cell = next(c for c in lab.state(nb)["cells"] if c["id"] == "x")
    assert cell["outputs"][0]["data"]["text/plain"] == "False"


def test_a_reload_shows_the_same_queue(lab: Server, pages: tuple[Any, Any]) -> None:
    _, bob = pages
    nb = notebook_id(bob)
    bob.reload()
    bob.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell")
    bob.evaluate(SHOW_PANEL)
    bob.wait_for_selector("#anode-panel .anode-status[data-status='live']")
    want = executions(lab, nb)
    last = want[-1]["id"]
    wait_state(bob, last, want[-1]["state"])
    rows = bob.locator("#anode-panel .anode-row")
    shown = [
        (rows.nth(i).get_attribute("data-execution-id"), rows.nth(i).get_attribute("data-state"))
        for i in range(rows.count())
    ]
    assert shown == [(e["id"], e["state"]) for e in reversed(want)]


def test_every_figure_of_a_row_and_the_counts_match_the_server(
    lab: Server, pages: tuple[Any, Any]
) -> None:
    """Who asked, the runtime, the request time, the duration, the state (with
    a non-ok status) and the counts per state, in both panels, against the
    server's state of the log (times formatted by the page's own clock format)."""
    nb = notebook_id(pages[0])
    ran = request(lab, nb, "21 * 2")
    wait_state(pages[0], ran, "completed")
    want = executions(lab, nb)
    last = want[-1]
    counts: dict[str, int] = {}
    for e in want:
        counts[e["state"]] = counts.get(e["state"], 0) + 1
    fmt = """ms => new Intl.DateTimeFormat(undefined,
        {hour: '2-digit', minute: '2-digit', second: '2-digit'}).format(ms)"""
    for page in pages:
        wait_state(page, last["id"], last["state"])
        for e in want[-6:]:  # the rows in view
            r = row(page, e["id"])
            assert r.locator(".anode-who").inner_text() == e["requested_by"]
            assert r.locator(".anode-runtime").inner_text() == (e["session_id"] or "")[:6]
            assert r.locator(".anode-time").inner_text() == page.evaluate(fmt, e["requested_at"])
            state = e["state"] + (f" ({e['status']})" if e["status"] not in (None, "ok") else "")
            assert r.locator(".anode-state").inner_text() == state
            took = ""
            if e["started_at"] is not None and e["ended_at"] is not None:
                ms = e["ended_at"] - e["started_at"]
                took = page.evaluate("ms => `${(ms / 1000).toFixed(2)} s`", ms)  # JS's rounding
            assert r.locator(".anode-duration").inner_text() == took
        shown = page.locator("#anode-panel .anode-counts").inner_text()
        assert (
            dict((k, int(v)) for v, k in (part.split(" ", 1) for part in shown.split(" · ")))
            == counts
        )

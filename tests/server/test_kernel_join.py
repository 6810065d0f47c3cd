"""A kernel this server starts for a document works that document's log here."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook
from tornado.httpclient import HTTPClientError

from anode_ext.kernel.install import install

from .test_rest import body, event, push


async def ready_client(km: Any, code: str) -> Any:
    """A client of the kernel, once it ran `code` (ok); stop its channels after."""
    kc = km.client()
    kc.start_channels()
    await kc.wait_for_ready(timeout=120)
    reply = await kc.execute_interactive(code, timeout=240)
    assert reply["content"]["status"] == "ok"
    return kc


async def state_of(jp_fetch: Any, nb: str) -> dict[str, Any]:
    return dict(body(await jp_fetch("anode", "api", "notebooks", nb)))


async def test_a_kernel_for_a_document_shares_its_queue_and_runtime(
    jp_fetch: Any, jp_serverapp: Any, jp_root_dir: Path, tmp_path: Path
) -> None:
    install(user=True)  # into this test's Jupyter data dir
    nbformat.write(
        new_notebook(cells=[new_code_cell("6 * 7", id="c1")]), jp_root_dir / "joined.ipynb"
    )
    resp = await jp_fetch(
        "api",
        "sessions",
        method="POST",
        body=json.dumps(
            {
                "path": "joined.ipynb",
                "name": "joined.ipynb",
                "type": "notebook",
                "kernel": {"name": "anode-pyodide"},
            }
        ),
    )
    kernel_id = body(resp)["kernel"]["id"]
    km = jp_serverapp.kernel_manager.get_kernel(kernel_id)
    kc = await ready_client(km, "x = 6 * 7\nprint('from the kernel')")
    try:
        nb = await jp_serverapp.web_app.settings["anode_notebooks"].notebook_of("joined.ipynb")
        state = await state_of(jp_fetch, nb)
        # The log was made from the file: its cell is there.
        assert [c["id"] for c in state["cells"]] == ["c1"]
        (ran,) = state["executions"]
        assert ran["status"] == "ok" and ran["requested_by"] == "anode-kernel"
        (runtime,) = state["runtimes"]
        assert runtime["state"] == "live"

        # A collaborator's request over REST runs on the kernel's runtime, in its namespace.
        x = uuid.uuid4().hex
        await push(
            jp_fetch, nb, event("ExecutionRequested", execution_id=x, cell_id="c1", code="x + 1")
        )
        for _ in range(240):
            state = await state_of(jp_fetch, nb)
            row = next(e for e in state["executions"] if e["id"] == x)
            if row["state"] in ("completed", "failed"):
                break
            await asyncio.sleep(0.5)
        assert row["status"] == "ok" and row["session_id"] == runtime["session_id"]
        cell = state["cells"][0]
        assert cell["outputs"][0]["data"]["text/plain"] == "43"

        # What JupyterLab runs in a cell is recorded as that cell's source
        # (earlier versions stay in the log), and an unknown cell is added at the end.
        await run_in_cell(kc, "y = 6 * 8\ny", "c1")
        await run_in_cell(kc, "z = 1", "lab-made")
        state = await state_of(jp_fetch, nb)
        assert [(c["id"], c["source"]) for c in state["cells"]] == [
            ("c1", "y = 6 * 8\ny"),
            ("lab-made", "z = 1"),
        ]
        assert state["cells"][0]["outputs"][0]["data"]["text/plain"] == "48"
        events = body(await jp_fetch("anode", "api", "notebooks", nb, "events"))["events"]
        (changed,) = [e["seq"] for e in events if e["name"] == "v1.CellSourceChanged"]
        before = body(await jp_fetch("anode", "api", "notebooks", nb, params={"at": changed - 1}))
        assert before["cells"][0]["source"] == "6 * 7"
        ran = [e["cell_id"] for e in state["executions"]]
        assert ran[-2:] == ["c1", "lab-made"]
    finally:
        kc.stop_channels()
        await jp_fetch("api", "sessions", body(resp)["id"], method="DELETE")


async def run_in_cell(kc: Any, code: str, cell_id: str) -> None:
    """An execute_request as JupyterLab sends it: the cell's id in the metadata."""
    msg = kc.session.msg(
        "execute_request",
        {"code": code, "silent": False, "store_history": True, "allow_stdin": False},
        metadata={"cellId": cell_id},
    )
    kc.shell_channel.send(msg)
    while True:
        reply = await kc.get_shell_msg(timeout=120)
        if reply["parent_header"].get("msg_id") == msg["header"]["msg_id"]:
            assert reply["content"]["status"] == "ok", reply["content"]
            return


async def test_documents_map_to_their_notebook(
    jp_fetch: Any, jp_root_dir: Path, tmp_path: Path
) -> None:
    nbformat.write(new_notebook(cells=[new_code_cell("1", id="a")]), jp_root_dir / "doc.ipynb")
    first = body(await jp_fetch("anode", "api", "documents", params={"path": "doc.ipynb"}))
    again = body(await jp_fetch("anode", "api", "documents", params={"path": "./doc.ipynb"}))
    assert first == again and first["path"] == "doc.ipynb"
    state = await state_of(jp_fetch, first["id"])
    assert [c["source"] for c in state["cells"]] == ["1"]
    # A document not on disk yet gets an empty log; paths outside the root are refused.
    fresh = body(await jp_fetch("anode", "api", "documents", params={"path": "new.ipynb"}))
    assert fresh["id"] != first["id"]
    for bad in ("../outside.ipynb", "/etc/passwd", "doc.txt", ""):
        with pytest.raises(HTTPClientError) as err:
            await jp_fetch("anode", "api", "documents", params={"path": bad})
        assert err.value.code == 400


async def test_the_kernel_joins_through_its_provisioner_and_stays_joined_after_a_restart(
    jp_fetch: Any, jp_serverapp: Any, jp_root_dir: Path
) -> None:
    """The kernelspec names Anode's provisioner (jupyter_client's launch hook),
    which joins the kernel at its start and again at a restart, and drops its
    credential when the kernel is shut down."""
    from jupyter_client.kernelspec import KernelSpecManager

    from anode_ext.kernel.provisioner import PROVISIONER_NAME, AnodeProvisioner

    install(user=True)
    spec = KernelSpecManager().get_kernel_spec("anode-pyodide")
    assert spec.metadata["kernel_provisioner"]["provisioner_name"] == PROVISIONER_NAME
    nbformat.write(new_notebook(cells=[new_code_cell("1", id="c1")]), jp_root_dir / "again.ipynb")
    session = {"path": "again.ipynb", "type": "notebook", "kernel": {"name": "anode-pyodide"}}
    resp = await jp_fetch("api", "sessions", method="POST", body=json.dumps(session))
    kernel_id = body(resp)["kernel"]["id"]
    km = jp_serverapp.kernel_manager.get_kernel(kernel_id)
    assert isinstance(km.provisioner, AnodeProvisioner)
    joins = jp_serverapp.web_app.settings["anode_kernels"]

    def credentials() -> list[str]:
        return [c for c, g in joins.grants.items() if g.kernel_id == kernel_id]

    (first,) = credentials()
    await jp_fetch("api", "kernels", kernel_id, "restart", method="POST", body="{}")
    (second,) = credentials()
    assert second != first
    kc = await ready_client(km, "after = 'the restart'")
    try:
        nb = joins.grants[second].notebook_id
        ran = (await state_of(jp_fetch, nb))["executions"]
        assert [(e["code"], e["requested_by"]) for e in ran] == [
            ("after = 'the restart'", "anode-kernel")
        ]
    finally:
        kc.stop_channels()
        await jp_fetch("api", "sessions", body(resp)["id"], method="DELETE")
    assert credentials() == []

"""A real `jupyter server` process with the extension: REST in, a runtime it starts, outputs out."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from .real import Server


def test_a_real_server_runs_a_queued_cell(tmp_path: Path) -> None:
    server = Server(tmp_path, "--AnodeApp.warm_runtimes=0").start()
    try:
        assert server.call("/anode/api/notebooks", token="wrong")[0] == 403
        nb = server.create()
        x = uuid.uuid4().hex
        events = [
            {
                "id": uuid.uuid4().hex,
                "name": "v1.CellCreated",
                "args": {"cell_id": "c", "cell_type": "code", "source": "6 * 7", "position": "V"},
            },
            {
                "id": uuid.uuid4().hex,
                "name": "v1.ExecutionRequested",
                "args": {"execution_id": x, "cell_id": "c", "code": "6 * 7"},
            },
        ]
        assert server.call(f"/anode/api/notebooks/{nb}/events", {"events": events})[0] == 200
        deadline = time.monotonic() + 240
        while True:
            state = server.state(nb)
            if state["executions"][0]["state"] in ("completed", "failed"):
                break
            assert time.monotonic() < deadline, state["executions"]
            time.sleep(0.5)
        assert state["executions"][0]["status"] == "ok"
        assert state["cells"][0]["outputs"][0]["data"]["text/plain"] == "42"
        assert (tmp_path / ".anode" / f"{nb}.anode").is_file()
    finally:
        server.stop()

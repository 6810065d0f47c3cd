from __future__ import annotations

import pytest


@pytest.fixture
def jp_server_config(tmp_path):  # type: ignore[no-untyped-def]
    return {
        "ServerApp": {"jpserver_extensions": {"anode_ext": True}},
        "AnodeApp": {"warm_runtimes": 0, "store_dir": str(tmp_path / "stores")},
    }

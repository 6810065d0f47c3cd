from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from anode_ext.log import Store

# jp_fetch, jp_ws_fetch, jp_serverapp for tests/server (must be declared at the top).
pytest_plugins = ["pytest_jupyter.jupyter_server"]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(tmp_path / "nb.anode", create=True)
    yield s
    s.close()

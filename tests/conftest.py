from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from anode_ext.log import Store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(tmp_path / "nb.anode", create=True)
    yield s
    s.close()

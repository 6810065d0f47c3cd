"""The permission flags, where Node 24's allow-list has sharp edges."""

from __future__ import annotations

from pathlib import Path

import pytest

from anode_ext.runtime.node import NodeNotFound, permission_flags


def test_nested_paths_are_dropped_so_the_outer_one_stays_readable(tmp_path: Path) -> None:
    outer, inner = tmp_path / "nb", tmp_path / "nb" / ".venv" / "js"
    inner.mkdir(parents=True)
    flags = permission_flags((24, 0, 0), [inner, outer], [outer])
    assert f"--allow-fs-read={outer}" in flags
    assert not any(str(inner) in f for f in flags)


def test_a_name_prefix_of_another_is_a_clear_error(tmp_path: Path) -> None:
    a, b = tmp_path / "ci", tmp_path / "ci-cache" / "site"
    b.mkdir(parents=True)
    a.mkdir()
    with pytest.raises(NodeNotFound, match="prefix"):
        permission_flags((24, 0, 0), [a, b], [a])

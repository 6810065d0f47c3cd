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


@pytest.fixture
def anode_config() -> dict[str, object]:
    """More `AnodeApp` traits for a module's server (override it there)."""
    return {}


@pytest.fixture
def jp_server_config(tmp_path, anode_config):  # type: ignore[no-untyped-def]
    """The server of pytest-jupyter's fixtures, with the extension on and no warm runtime."""
    return {
        "ServerApp": {"jpserver_extensions": {"anode_ext": True}},
        "AnodeApp": {"warm_runtimes": 0, "store_dir": str(tmp_path / "stores"), **anode_config},
    }


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL database for the session: `$ANODE_TEST_DATABASE_URL`, or a
    throwaway cluster (Debian's postgresql-15, installed by `make test`)."""
    import os

    url = os.environ.get("ANODE_TEST_DATABASE_URL")
    if url:
        yield url
        return
    from anode_ext.pgserver import ThrowawayPostgres

    with ThrowawayPostgres() as pg:
        yield pg.url

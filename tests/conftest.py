from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from anode_ext.log import Store

# No warm pool service for the kernels tests start (each would leave one
# behind for its idle while); tests/runtime/test_pool.py runs its own.
os.environ["ANODE_POOL"] = "0"

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


@pytest.fixture(params=["sqlite", "postgres"])
def anode_store(request):  # type: ignore[no-untyped-def]
    """Every in-process server test runs on both stores."""
    return request.param


@pytest.fixture
def jp_server_config(tmp_path, anode_config, anode_store, request):  # type: ignore[no-untyped-def]
    """The server of pytest-jupyter's fixtures, with the extension on and no warm
    runtime, on the embedded SQLite store or (each test its own database) PostgreSQL."""
    store: dict[str, object] = {"store_dir": str(tmp_path / "stores")}
    if anode_store == "postgres":
        store["database_url"] = request.getfixturevalue("postgres_url")
    return {
        "ServerApp": {"jpserver_extensions": {"anode_ext": True}},
        "AnodeApp": {"warm_runtimes": 0, **store, **anode_config},
    }


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A PostgreSQL server for the session: `$ANODE_TEST_DATABASE_URL`, or a
    throwaway cluster (Debian's postgresql-15, installed by `make test`)."""
    import os

    url = os.environ.get("ANODE_TEST_DATABASE_URL")
    if url:
        yield url
        return
    from anode_ext.pgserver import ThrowawayPostgres

    with ThrowawayPostgres() as pg:
        yield pg.url


@contextlib.contextmanager
def new_database(server: str) -> Iterator[str]:
    """A fresh database on a PostgreSQL server (its URL), dropped afterwards."""
    import uuid

    import psycopg
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    name = f"anode_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server, autocommit=True) as db:
        db.execute(f"CREATE DATABASE {name}")
    params = conninfo_to_dict(server)
    params["dbname"] = name
    try:
        yield make_conninfo(**params)
    finally:
        with psycopg.connect(server, autocommit=True) as db:
            db.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A fresh database on that server for one test (notebooks and paths of its own)."""
    with new_database(postgres_server) as url:
        yield url

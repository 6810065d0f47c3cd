"""A server whose PostgreSQL cannot be reached answers 503 and why, not a bare 500."""

from __future__ import annotations

import json
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError


@pytest.fixture
def anode_store() -> str:
    return "postgres"  # (one run: the database below replaces the test one)


@pytest.fixture
def anode_config() -> dict[str, object]:
    return {"database_url": "postgresql://nobody@127.0.0.1:1/nothing"}


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", ("anode", "api", "notebooks"), None),
        ("POST", ("anode", "api", "notebooks"), {"title": "t"}),
        ("GET", ("anode", "api", "notebooks", "abc"), None),
        ("POST", ("anode", "api", "notebooks", "abc", "events"), {"events": []}),
    ],
)
async def test_an_unreachable_database_answers_503_with_the_reason(
    jp_fetch: Any, method: str, path: tuple[str, ...], body: Any
) -> None:
    with pytest.raises(HTTPClientError) as err:
        await jp_fetch(*path, method=method, body=None if body is None else json.dumps(body))
    assert err.value.code == 503
    answer = json.loads(err.value.response.body)
    reason = answer.get("message") or answer.get("reason")
    assert "cannot connect to PostgreSQL" in reason, answer

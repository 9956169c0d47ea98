"""The parse and validation caches hit on repeated operations, with the query limits in force.

A limiter made per request brings new validation rule classes, and Strawberry's validation
cache is keyed by the rules: every request then missed and was validated again.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import strawberry.schema.schema

from agno_graphql.app import build_schema
from tests.conftest import server_settings

QUERY = "query Agents { agents { id name tools { name } } }"
TOO_DEEP = "{ agents { sessions { nodes { agent { sessions { nodes { agent { sessions { nodes { id } } } } } } } } } }"


def count_validations(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """A counter of the documents graphql-core validates from now on, as a one-item list.

    Strawberry validates every document, with or without its ValidationCache, through graphql-core's `validate` as
    imported into `strawberry.schema.schema` (strawberry-graphql 0.341.2, graphql-core 3.3.2): the one place to count
    it. Should Strawberry stop calling it there, the first request counts nothing and the test fails at that assert.
    """
    validations = [0]
    validate: Callable[..., Any] = strawberry.schema.schema.validate

    def counted(*args: Any, **kwargs: Any) -> Any:
        validations[0] += 1
        return validate(*args, **kwargs)

    monkeypatch.setattr(strawberry.schema.schema, "validate", counted)
    return validations


async def test_a_repeated_operation_is_validated_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    schema = build_schema(server_settings(f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path))
    validations = count_validations(monkeypatch)
    await schema.execute(QUERY, context_value=None)
    assert validations == [1]
    for _ in range(3):
        await schema.execute(QUERY, context_value=None)
    assert validations == [1]


async def test_the_depth_limit_still_applies_with_the_shared_rules(tmp_path: Path) -> None:
    schema = build_schema(server_settings(f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path, max_query_depth=4))
    for _ in range(2):
        result = await schema.execute(TOO_DEEP, context_value=None)
        assert result.errors and "exceeds maximum operation depth" in result.errors[0].message

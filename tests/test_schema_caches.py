"""The parse and validation caches hit on repeated operations, with the query limits in force.

A limiter made per request brings new validation rule classes, and Strawberry's validation
cache is keyed by the rules: every request then missed and was validated again.
"""

from __future__ import annotations

from pathlib import Path

from strawberry.extensions.validation_cache import _get_validate_cache

from agno_graphql.app import build_schema
from tests.conftest import server_settings

QUERY = "query Agents { agents { id name tools { name } } }"
TOO_DEEP = "{ agents { sessions { nodes { agent { sessions { nodes { agent { sessions { nodes { id } } } } } } } } } }"


async def test_a_repeated_operation_is_validated_once(tmp_path: Path) -> None:
    schema = build_schema(server_settings(f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path))
    cache = _get_validate_cache(256)
    await schema.execute(QUERY, context_value=None)
    hits_before = cache.cache_info().hits
    for _ in range(3):
        await schema.execute(QUERY, context_value=None)
    assert cache.cache_info().hits == hits_before + 3


async def test_the_depth_limit_still_applies_with_the_shared_rules(tmp_path: Path) -> None:
    schema = build_schema(server_settings(f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path, max_query_depth=4))
    for _ in range(2):
        result = await schema.execute(TOO_DEEP, context_value=None)
        assert result.errors and "exceeds maximum operation depth" in result.errors[0].message

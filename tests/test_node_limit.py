"""The node limit: an operation asking for more than AGNO_GRAPHQL_MAX_NODES nodes is refused before it runs.

A connection counts its page size (`last`, else `first`, else the default) times the page sizes of the connections
above it, once for `nodes` and `edges` together; `agents` multiplies by the registered agents; aliases count each time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest
from graphql import parse

from agno_graphql import node_limit
from agno_graphql.node_limit import NodeCounter, count_nodes
from tests.client import execute, operation, post, subscribe
from tests.conftest import RunningServer, make_token
from tests.matrix_support import codes
from tests.run_support import refusal, subscription
from tests.test_schema import sdl_schema

MESSAGES_OF_SESSIONS = "sessions(first: 100) { nodes { messages(first: 100) { nodes { id } } } }"
THIRTY_ALIASES = "{ " + " ".join(f"a{i}: {MESSAGES_OF_SESSIONS}" for i in range(30)) + " }"
AT_THE_LIMIT = "{ sessions(first: 100) { nodes { messages(first: 99) { nodes { id } } } } }"  # 100 + 100 * 99
JUST_OVER = "{ " + MESSAGES_OF_SESSIONS + " }"  # 100 + 100 * 100
PAGES_FROM_A_VARIABLE = (
    "query Pages($n: Int = 100) { sessions(first: $n) { nodes { messages(first: $n) { nodes { id } } } } }"
)
MESSAGES_OF_EVERY_AGENT = "{ agents { sessions(first: 100) { nodes { messages(first: 34) { nodes { id } } } } } }"
EVENTS_OVER_THE_LIMIT = "subscription { sessionEvents { session { agent { " + MESSAGES_OF_SESSIONS + " } } } }"


def count(document: str, variables: Mapping[str, Any] | None = None, **options: Any) -> int:
    return count_nodes(sdl_schema(), parse(document), variables=variables, **options)


def test_thirty_aliases_of_sessions_with_their_messages_count_every_page() -> None:
    assert count(THIRTY_ALIASES) == 30 * 100 + 30 * 100 * 100 == 303_000


def test_a_nested_connection_counts_its_page_times_the_pages_above_it() -> None:
    assert count(JUST_OVER) == 100 + 100 * 100
    two_below = "messages(first: 5) { nodes { id } } runs(last: 3) { edges { node { id } } }"
    assert count("{ sessions(first: 10) { nodes { " + two_below + " } } }") == 10 + 10 * 5 + 10 * 3


def test_nodes_and_edges_of_one_connection_count_once() -> None:
    assert count("{ sessions(first: 10) { nodes { id } edges { cursor node { id } } } }") == 10


def test_a_connection_without_nodes_or_edges_counts_nothing() -> None:
    assert count("{ sessions(first: 100) { totalCount pageInfo { hasNextPage } } }") == 0
    assert count("{ viewer { userId } agents { id tools { name } } }") == 0


def test_last_wins_over_first_and_the_default_page_size_fills_in() -> None:
    assert count("{ sessions(first: 7, last: 3) { nodes { id } } }") == 3
    assert count("{ sessions { nodes { id } } }") == 20
    assert count("{ sessions { nodes { id } } }", default_page_size=50) == 50


def test_a_variable_counts_with_its_value_or_its_default_when_absent() -> None:
    assert count(PAGES_FROM_A_VARIABLE) == 100 + 100 * 100
    assert count(PAGES_FROM_A_VARIABLE, {"n": 10}) == 10 + 10 * 10
    assert count("query ($n: Int) { sessions(first: $n) { nodes { id } } }") == 20
    assert count("query ($l: Int = 5) { sessions(last: $l, first: 7) { nodes { id } } }", {"l": None}) == 7


def test_the_history_document_counts_its_default_of_twenty_messages() -> None:
    assert count(operation("SessionHistory"), {"id": "s"}) == 20
    assert count(operation("SessionHistory"), {"id": "s", "last": 50}) == 50


def test_fragments_count_like_the_fields_they_spread() -> None:
    spread = """
    { sessions(first: 10) { ...Conversation } }
    fragment Conversation on SessionConnection { nodes { ... on Session { messages(first: 10) { nodes { id } } } } }
    """
    assert count(spread) == 10 + 10 * 10
    # The same field selected directly and through a fragment is merged, as execution merges it.
    merged = """
    { sessions(first: 10) { nodes { id messages(first: 10) { nodes { id } } ...Messages } } }
    fragment Messages on Session { messages(first: 10) { nodes { content } } }
    """
    assert count(merged) == 10 + 10 * 10


def test_aliases_count_each_time() -> None:
    assert count("{ a: sessions(first: 10) { nodes { id } } b: sessions(first: 10) { nodes { id } } }") == 20


def test_agents_multiply_by_the_registered_agents() -> None:
    assert count(MESSAGES_OF_EVERY_AGENT, agent_count=3) == 3 * (100 + 100 * 34)
    assert count('{ agent(id: "a") { sessions(first: 100) { nodes { id } } } }', agent_count=3) == 100


def test_a_subscription_counts_the_nodes_of_one_event() -> None:
    assert count(operation("RunAgent"), {"input": {}}) == 0
    assert count("subscription { sessionEvents { session { messages(last: 50) { nodes { id } } } } }") == 50
    assert count(EVENTS_OVER_THE_LIMIT) == 100 + 100 * 100


def test_fields_under_skip_and_include_count_as_selected() -> None:
    assert count("{ sessions(first: 100) @skip(if: true) { nodes { id } } }") == 100


def test_a_repeated_operation_is_counted_once(monkeypatch: pytest.MonkeyPatch) -> None:
    walks = []
    walk = node_limit._Count.operation

    def counted(self: Any, *args: Any) -> int:
        walks.append(1)
        return walk(self, *args)

    monkeypatch.setattr(node_limit._Count, "operation", counted)
    counter, document = NodeCounter(), parse(PAGES_FROM_A_VARIABLE)

    def nodes(variables: dict[str, Any]) -> int:
        return counter.count(sdl_schema(), PAGES_FROM_A_VARIABLE, document, "Pages", variables, agent_count=3)

    assert [nodes({"n": 10}), nodes({"n": 10, "other": "x"}), nodes({"n": 10, "other": "y"})] == [110, 110, 110]
    assert len(walks) == 1
    assert nodes({"n": 5}) == 30
    assert len(walks) == 2


def test_the_counts_remembered_are_bounded() -> None:
    counter = NodeCounter(cache_size=4)
    for size in range(10):
        text = f"{{ sessions(first: {size}) {{ nodes {{ id }} }} }}"
        assert counter.count(sdl_schema(), text, parse(text), None, None, agent_count=1) == size
    assert len(counter._counts) <= 4 and len(counter._page_variables) <= 4


def assert_too_complex(errors: list[dict[str, Any]], nodes: int) -> None:
    assert codes(errors) == ["QUERY_TOO_COMPLEX"]
    assert errors[0]["extensions"] == {"code": "QUERY_TOO_COMPLEX", "nodes": nodes, "limit": 10_000}


async def test_thirty_aliases_of_sessions_with_their_messages_are_refused(server: RunningServer, user_id: str) -> None:
    assert server.settings.max_nodes == 10_000
    response = await post(server, make_token(user_id), THIRTY_ALIASES)
    assert response.get("data") is None
    assert_too_complex(response["errors"], 303_000)


async def test_a_query_at_the_limit_is_served_and_one_node_more_is_refused(server: RunningServer, user_id: str) -> None:
    token = make_token(user_id)
    assert await post(server, token, AT_THE_LIMIT) == {"data": {"sessions": {"nodes": []}}}
    assert_too_complex((await post(server, token, JUST_OVER))["errors"], 10_100)


async def test_page_sizes_from_variables_are_counted(server: RunningServer, user_id: str) -> None:
    token = make_token(user_id)
    assert_too_complex((await post(server, token, PAGES_FROM_A_VARIABLE))["errors"], 10_100)
    assert await post(server, token, PAGES_FROM_A_VARIABLE, {"n": 50}) == {"data": {"sessions": {"nodes": []}}}


async def test_agents_count_with_the_registered_agents(server: RunningServer, user_id: str) -> None:
    assert len(server.services.agents.specs()) == 3
    response = await post(server, make_token(user_id), MESSAGES_OF_EVERY_AGENT)
    assert_too_complex(response["errors"], 3 * (100 + 100 * 34))


async def test_the_sidebar_query_is_served(server: RunningServer, user_id: str) -> None:
    result = await execute(server, make_token(user_id), operation("Sessions"), {"first": 100})
    assert result["sessions"]["totalCount"] == 0


async def test_a_subscription_over_the_limit_is_refused_before_it_starts(server: RunningServer, user_id: str) -> None:
    async with subscription(server, make_token(user_id), EVENTS_OVER_THE_LIMIT) as events:
        refused = await asyncio.wait_for(events.next(), timeout=10)
        assert_too_complex(refusal(refused), 10_100)
        assert (await asyncio.wait_for(events.next(), timeout=10))["type"] == "complete"


async def test_a_run_streams_under_the_limit(server: RunningServer, user_id: str) -> None:
    variables = {"input": {"agentId": "assistant", "message": "hello"}}
    results = await subscribe(server, make_token(user_id), operation("RunAgent"), variables)
    kinds = [result["runAgent"]["__typename"] for result in results]
    assert kinds[0] == "RunStarted" and kinds[-1] == "RunCompleted"

"""Request limits and switches: query depth, aliases, tokens, body size, GET, GraphiQL, introspection, subscriptions.

Refusals carry a code and never INTERNAL_SERVER_ERROR.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.client import bearer, execute, operation, post
from tests.conftest import RunningServer, make_token, start_server
from tests.conftest import server_settings as settings_with
from tests.matrix_support import (
    SESSION,
    acknowledged_ws,
    codes,
    create_session,
    receive,
    subscribe_run,
)

RESTRICTED_BODY_BYTES = 4096
RESTRICTED_SUBSCRIPTIONS = 2


@pytest.fixture(scope="module")
def restricted(
    new_database_url: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    """A server with GraphiQL and introspection off, a small body limit and two subscriptions per socket."""
    settings = settings_with(
        new_database_url("limits"),
        tmp_path_factory.mktemp("limits"),
        graphiql=False,
        introspection=False,
        max_body_bytes=RESTRICTED_BODY_BYTES,
        max_subscriptions_per_connection=RESTRICTED_SUBSCRIPTIONS,
        offline_delay_ms=30,
    )
    running = start_server(settings)
    try:
        yield running
    finally:
        running.stop()


def assert_refused(response: dict[str, Any], code: str) -> None:
    """Refused before execution: no data, one coded error, and not an internal one."""
    assert response.get("data") is None
    assert codes(response["errors"]) == [code]
    assert "INTERNAL_SERVER_ERROR" not in json.dumps(response)


async def post_padded(server: RunningServer, user_id: str, padding: str) -> httpx.Response:
    """The viewer query as the user's POST, its body made larger by an unused `padding` variable."""
    body = {"query": "{ viewer { userId } }", "variables": {"padding": padding}}
    async with httpx.AsyncClient(timeout=30) as client:
        return await client.post(server.http_url, json=body, headers=bearer(make_token(user_id)))


def deep_query(depth: int) -> str:
    """A query whose leaf field is at `depth` (root fields are at depth 0): sessions, nodes, agent, sessions, ...;
    a page of one session each time, so that the node limit stays far (a depth of 12 asks for 4 nodes)."""
    containers = [("sessions(first: 1)", "nodes", "agent")[level % 3] for level in range(depth)]
    leaf = {"sessions(first: 1)": "totalCount", "nodes": "id", "agent": "id"}[containers[-1]]
    selection = leaf
    for field in reversed(containers):
        selection = f"{field} {{ {selection} }}"
    return "{ " + selection + " }"


def test_deep_query_builder_counts_levels() -> None:
    assert deep_query(1) == "{ sessions(first: 1) { totalCount } }"
    assert deep_query(3) == "{ sessions(first: 1) { nodes { agent { id } } } }"
    assert deep_query(4) == "{ sessions(first: 1) { nodes { agent { sessions(first: 1) { totalCount } } } } }"


async def test_query_at_max_depth_is_served(server: RunningServer, user_id: str) -> None:
    assert server.settings.max_query_depth == 12
    response = await post(server, make_token(user_id), deep_query(12))
    assert "errors" not in response
    assert response["data"] == {"sessions": {"nodes": []}}


async def test_query_deeper_than_max_depth_is_refused(server: RunningServer, user_id: str) -> None:
    response = await post(server, make_token(user_id), deep_query(15))
    assert_refused(response, "GRAPHQL_VALIDATION_FAILED")
    assert "depth" in response["errors"][0]["message"]


async def test_query_one_level_too_deep_is_refused(server: RunningServer, user_id: str) -> None:
    response = await post(server, make_token(user_id), deep_query(13))
    assert_refused(response, "GRAPHQL_VALIDATION_FAILED")


def aliased(count: int) -> str:
    return "{ " + " ".join(f"a{i}: viewer {{ userId }}" for i in range(count)) + " }"


async def test_query_with_max_aliases_is_served(server: RunningServer, user_id: str) -> None:
    assert server.settings.max_aliases == 30
    response = await post(server, make_token(user_id), aliased(30))
    assert "errors" not in response
    assert len(response["data"]) == 30


async def test_query_with_too_many_aliases_is_refused(server: RunningServer, user_id: str) -> None:
    response = await post(server, make_token(user_id), aliased(31))
    assert_refused(response, "GRAPHQL_VALIDATION_FAILED")


def tokens(count: int) -> str:
    """A query of exactly `count` lexical tokens (20 of structure, the rest list items)."""
    roles = " ".join(["USER"] * (count - 20))
    return '{ session(id: "x") { messages(roles: [' + roles + "]) { totalCount } } }"


async def test_query_with_max_tokens_is_served(server: RunningServer, user_id: str) -> None:
    assert server.settings.max_tokens == 2000
    response = await post(server, make_token(user_id), tokens(2000))
    assert response == {"data": {"session": None}}


async def test_query_with_too_many_tokens_is_refused(server: RunningServer, user_id: str) -> None:
    response = await post(server, make_token(user_id), tokens(2001))
    assert_refused(response, "GRAPHQL_PARSE_FAILED")
    assert "tokens" in response["errors"][0]["message"]


async def test_query_padded_with_comments_counts_them(server: RunningServer, user_id: str) -> None:
    document = "{ viewer { userId } }\n" + "#\n" * 5000
    response = await post(server, make_token(user_id), document)
    assert_refused(response, "GRAPHQL_PARSE_FAILED")


async def test_body_over_the_limit_is_413(restricted: RunningServer, user_id: str) -> None:
    response = await post_padded(restricted, user_id, "x" * RESTRICTED_BODY_BYTES)
    assert response.status_code == 413
    assert "INTERNAL_SERVER_ERROR" not in response.text


async def test_streamed_body_over_the_limit_is_413(restricted: RunningServer, user_id: str) -> None:
    """No Content-Length to trust: the limit applies to the bytes as they arrive."""

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"query": "{ viewer { userId } }", "variables": {"padding": "'
        for _ in range(10):
            yield b"x" * 1000
        yield b'"}}'

    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(
            restricted.http_url,
            content=chunks(),
            headers={**bearer(make_token(user_id)), "Content-Type": "application/json"},
        )
    assert response.status_code == 413
    assert "INTERNAL_SERVER_ERROR" not in response.text


async def test_body_under_the_limit_is_served(restricted: RunningServer, user_id: str) -> None:
    response = await post_padded(restricted, user_id, "x" * (RESTRICTED_BODY_BYTES // 2))
    assert response.status_code == 200
    assert response.json() == {"data": {"viewer": {"userId": user_id}}}


async def test_body_over_the_default_limit_is_413(server: RunningServer, user_id: str) -> None:
    assert server.settings.max_body_bytes == 1_000_000
    response = await post_padded(server, user_id, "x" * 1_000_001)
    assert response.status_code == 413


async def test_mutation_over_get_is_refused_and_not_executed(server: RunningServer, token: str) -> None:
    wanted = str(uuid.uuid4())
    variables = {"input": {"agentId": "assistant", "sessionId": wanted}}
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.get(
            server.http_url,
            params={"query": operation("CreateSession"), "variables": json.dumps(variables)},
            headers=bearer(token),
        )
    assert response.status_code in (400, 405) or "errors" in response.json()
    assert "INTERNAL_SERVER_ERROR" not in response.text
    assert await execute(server, token, SESSION, {"id": wanted}) == {"session": None}
    # The same mutation over POST works, so the GET refusal was about the method.
    created = await create_session(server, token, "assistant", session_id=wanted)
    assert created["id"] == wanted


async def test_query_over_get_is_served(server: RunningServer, user_id: str) -> None:
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.get(
            server.http_url, params={"query": "{ viewer { userId } }"}, headers=bearer(make_token(user_id))
        )
    assert response.status_code == 200
    assert response.json() == {"data": {"viewer": {"userId": user_id}}}


async def test_graphiql_is_served_to_browsers(server: RunningServer) -> None:
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.get(server.http_url, headers={"Accept": "text/html"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "graphiql" in response.text.lower()


async def test_graphiql_is_not_served_when_switched_off(restricted: RunningServer) -> None:
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.get(restricted.http_url, headers={"Accept": "text/html"})
    assert response.status_code == 404
    assert "graphiql" not in response.text.lower()


INTROSPECTION = "{ __schema { queryType { name } } }"


async def test_introspection_is_served_by_default(server: RunningServer, user_id: str) -> None:
    response = await post(server, make_token(user_id), INTROSPECTION)
    assert response == {"data": {"__schema": {"queryType": {"name": "Query"}}}}


@pytest.mark.parametrize("document", [INTROSPECTION, '{ __type(name: "Query") { name } }'], ids=["schema", "type"])
async def test_introspection_is_refused_when_switched_off(
    restricted: RunningServer, user_id: str, document: str
) -> None:
    response = await post(restricted, make_token(user_id), document)
    assert response.get("data") is None
    assert set(codes(response["errors"])) == {"GRAPHQL_VALIDATION_FAILED"}
    assert "introspection" in response["errors"][0]["message"].lower()


async def test_queries_are_served_with_introspection_switched_off(restricted: RunningServer, user_id: str) -> None:
    response = await post(restricted, make_token(user_id), "{ viewer { userId } agents { id } }")
    assert response["data"]["viewer"] == {"userId": user_id}
    assert {agent["id"] for agent in response["data"]["agents"]} == {"assistant", "calculator", "helpdesk"}


async def test_subscriptions_per_connection_are_limited(restricted: RunningServer, token: str) -> None:
    long_message = " ".join(f"word{i}" for i in range(60))
    variables = {"input": {"agentId": "assistant", "message": long_message}}
    async with acknowledged_ws(restricted, token) as ws:
        for operation_id in ("1", "2", "3"):
            await subscribe_run(ws, operation_id, variables)
        refused: dict[str, Any] | None = None
        started: set[str] = set()
        for _ in range(200):
            message = await receive(ws)
            if message["type"] == "error":
                refused = message
                break
            if message["type"] == "next":
                started.add(message["id"])
        assert refused is not None and refused["id"] == "3"
        assert "limit" in refused["payload"][0]["message"].lower()
        assert "INTERNAL_SERVER_ERROR" not in json.dumps(refused)
        # Ending one subscription frees its place for a new one.
        await ws.send(json.dumps({"id": "1", "type": "complete"}))
        await subscribe_run(ws, "4", variables)
        first_of_four: dict[str, Any] | None = None
        for _ in range(500):
            message = await receive(ws)
            assert message["type"] != "error", message
            if message["id"] == "4":
                first_of_four = message
                break
        assert first_of_four is not None and first_of_four["type"] == "next"
        assert first_of_four["payload"]["data"]["runAgent"]["__typename"] == "RunStarted"


async def test_a_frontend_on_another_origin_may_call_over_http(server: RunningServer, user_id: str) -> None:
    origin = "http://localhost:5173"
    async with httpx.AsyncClient(timeout=30) as client:
        preflight = await client.options(
            server.http_url,
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization,content-type",
            },
        )
        response = await client.post(
            server.http_url,
            json={"query": "{ viewer { userId } }"},
            headers={"Origin": origin, "Authorization": f"Bearer {make_token(user_id)}"},
        )
    assert preflight.status_code == 200
    assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
    assert response.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in response.headers
    assert response.json() == {"data": {"viewer": {"userId": user_id}}}

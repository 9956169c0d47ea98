"""Automatic persisted queries on a real server, on SQLite and MariaDB: a hash alone, unknown then registered, over
POST, GET and SSE; wrong hashes and malformed extensions refused; GET answers kept out of shared caches; documents
shared by two instances over Redis. (The clients' side, Apollo's PersistedQueryLink and urql's persistedExchange,
is in clients/js.)"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.client import bearer
from tests.conftest import RunningServer, make_token, two_instances_over_redis
from tests.matrix_support import codes, create_session
from tests.test_http_streaming import PROTOCOLS, open_stream, stream_results


def sha256(document: str) -> str:
    return hashlib.sha256(document.encode()).hexdigest()


def persisted(document: str) -> dict[str, Any]:
    return {"persistedQuery": {"version": 1, "sha256Hash": sha256(document)}}


def unique_query() -> str:
    """A document no earlier test registered (the server keeps documents for the whole suite)."""
    return f"query Viewer{uuid.uuid4().hex} {{ viewer {{ userId }} }}"


async def post(server: RunningServer, token: str | None, body: dict[str, Any]) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30) as client:
        return await client.post(server.http_url, json=body, headers=bearer(token) if token else {})


async def get(server: RunningServer, token: str, params: dict[str, str], accept: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30) as client:
        return await client.get(server.http_url, params=params, headers={**bearer(token), "Accept": accept})


def assert_not_found(response: httpx.Response) -> None:
    assert response.status_code == 200, response.text
    errors = response.json()["errors"]
    assert [e["message"] for e in errors] == ["PersistedQueryNotFound"]
    assert codes(errors) == ["PERSISTED_QUERY_NOT_FOUND"]


async def test_an_unknown_hash_is_not_found_then_registered_with_its_document(
    server: RunningServer, user_id: str
) -> None:
    token, query = make_token(user_id), unique_query()
    assert_not_found(await post(server, token, {"extensions": persisted(query)}))
    registered = await post(server, token, {"query": query, "extensions": persisted(query)})
    assert registered.json() == {"data": {"viewer": {"userId": user_id}}}
    by_hash = await post(server, token, {"extensions": persisted(query)})
    assert by_hash.json() == {"data": {"viewer": {"userId": user_id}}}
    # The document is the app's, not the user's: another user runs it by hash as themselves.
    other = await post(server, make_token(f"{user_id}-b"), {"extensions": persisted(query)})
    assert other.json() == {"data": {"viewer": {"userId": f"{user_id}-b"}}}


async def test_a_hash_with_variables_and_an_operation_name(server: RunningServer, token: str) -> None:
    session_id = str((await create_session(server, token))["id"])
    name = f"Session{uuid.uuid4().hex}"
    query = f"query {name}($id: ID!) {{ session(id: $id) {{ id }} }}"
    await post(server, token, {"query": query, "variables": {"id": session_id}, "extensions": persisted(query)})
    body = {"variables": {"id": session_id}, "extensions": persisted(query), "operationName": name}
    answer = await post(server, token, body)
    assert answer.json() == {"data": {"session": {"id": session_id}}}


@pytest.mark.parametrize(
    ("extensions", "words"),
    [
        ({"persistedQuery": {"version": 1, "sha256Hash": sha256("{ other }")}}, "does not match"),
        ({"persistedQuery": {"version": 2, "sha256Hash": sha256("{ viewer { userId } }")}}, "version: 1"),
        ({"persistedQuery": {"version": 1, "sha256Hash": "abc"}}, "SHA-256"),
        ({"persistedQuery": {"version": 1}}, "SHA-256"),
        ({"persistedQuery": "yes"}, "version: 1"),
    ],
)
async def test_a_wrong_hash_or_a_malformed_extension_is_a_bad_request(
    server: RunningServer, user_id: str, extensions: dict[str, Any], words: str
) -> None:
    response = await post(server, make_token(user_id), {"query": "{ viewer { userId } }", "extensions": extensions})
    assert response.status_code == 400, response.text
    errors = response.json()["errors"]
    assert codes(errors) == ["BAD_REQUEST"] and words in errors[0]["message"], errors


async def test_other_keys_of_the_extension_are_ignored(server: RunningServer, user_id: str) -> None:
    token, query = make_token(user_id), unique_query()
    extensions = {"persistedQuery": {**persisted(query)["persistedQuery"], "client": "x"}, "tracing": True}
    answer = await post(server, token, {"query": query, "extensions": extensions})
    assert answer.json() == {"data": {"viewer": {"userId": user_id}}}


async def test_a_document_sent_without_a_token_is_not_registered(server: RunningServer, user_id: str) -> None:
    query = unique_query()
    refused = await post(server, None, {"query": query, "extensions": persisted(query)})
    assert codes(refused.json()["errors"]) == ["UNAUTHENTICATED"]
    assert_not_found(await post(server, make_token(user_id), {"extensions": persisted(query)}))


async def test_a_get_with_a_hash_is_an_operation_whatever_it_accepts(server: RunningServer, user_id: str) -> None:
    """What Apollo's useGETForHashedQueries sends; a browser's Accept would otherwise get the GraphiQL page."""
    token, query = make_token(user_id), unique_query()
    params = {"extensions": json.dumps(persisted(query))}
    for accept in ("application/json", "text/html,*/*"):
        unknown = await get(server, token, params, accept)
        assert_not_found(unknown)
    registered = await get(server, token, {**params, "query": query}, "application/json")
    assert registered.json() == {"data": {"viewer": {"userId": user_id}}}
    answer = await get(server, token, params, "text/html,application/xhtml+xml,*/*;q=0.8")
    assert answer.json() == {"data": {"viewer": {"userId": user_id}}}
    for response in (unknown, registered, answer):
        assert response.headers["cache-control"] == "private"
        assert "authorization" in response.headers["vary"].lower()


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_subscription_over_http_runs_by_hash(server: RunningServer, token: str, protocol: str) -> None:
    """SSE and multipart subscriptions: unknown (a plain JSON answer, as for a query), registered, then by hash."""
    query = f"subscription Run{uuid.uuid4().hex}($input: RunAgentInput!) {{ runAgent(input: $input) {{ __typename }} }}"
    variables = {"input": {"agentId": "assistant", "message": "by hash"}}
    async with open_stream(server, token, protocol, None, variables, persisted(query)) as unknown:
        await unknown.aread()
        assert_not_found(unknown)
    for document in (query, None):
        results = await stream_results(open_stream(server, token, protocol, document, variables, persisted(query)))
        kinds = [result["data"]["runAgent"]["__typename"] for result in results]
        assert kinds[0] == "RunStarted" and kinds[-1] == "RunCompleted", results


@pytest.fixture(scope="module")
def two_instances(
    new_database_url: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RunningServer, RunningServer]]:
    with two_instances_over_redis(new_database_url("apq"), tmp_path_factory, "apq") as pair:
        yield pair


async def test_a_document_registered_on_one_instance_runs_by_hash_on_the_other(
    two_instances: tuple[RunningServer, RunningServer], user_id: str
) -> None:
    a, b = two_instances
    token, query = make_token(user_id), unique_query()
    await post(a, token, {"query": query, "extensions": persisted(query)})
    answer = await post(b, token, {"extensions": persisted(query)})
    assert answer.json() == {"data": {"viewer": {"userId": user_id}}}

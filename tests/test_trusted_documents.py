"""Trusted documents on a real server, on SQLite and MariaDB: with AGNO_GRAPHQL_TRUSTED_DOCUMENTS set, only the
manifest's operations run, by hash or as listed text, over HTTP and both websocket protocols; introspection
alone stays allowed while INTROSPECTION is on. (The chat page's own manifest is tested in examples/web-chat.)"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from agno_graphql.app import build_services
from agno_graphql.settings import SettingsError
from tests.client import LEGACY_WS, bearer
from tests.conftest import RunningServer, make_token, server_settings, serving_with
from tests.matrix_support import acknowledged_ws, codes, receive

VIEWER = "query Viewer { viewer { userId } }"
RUN = 'subscription Run { runAgent(input: {agentId: "assistant", message: "trusted"}) { __typename } }'
UNLISTED = "query Other { viewer { userId } }"
INTROSPECTION = "query Schema { __schema { queryType { name } } __typename }"


def sha256(document: str) -> str:
    return hashlib.sha256(document.encode()).hexdigest()


MANIFEST = {sha256(VIEWER): VIEWER, sha256(RUN): RUN}


def by_hash(document: str) -> dict[str, Any]:
    return {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": sha256(document)}}}


def manifest_file(folder: Path) -> Path:
    path = folder / "persisted-documents.json"
    path.write_text(json.dumps(MANIFEST))
    return path


@pytest.fixture(scope="module")
def trusted_server(
    new_database_url: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    manifest = manifest_file(tmp_path_factory.mktemp("manifest"))
    with serving_with(new_database_url, tmp_path_factory, "trusted", trusted_documents=str(manifest)) as running:
        yield running


async def post(server: RunningServer, user_id: str, body: dict[str, Any]) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30) as client:
        return await client.post(server.http_url, json=body, headers=bearer(make_token(user_id)))


def assert_not_allowed(response: httpx.Response) -> None:
    assert response.status_code == 400, response.text
    errors = response.json()["errors"]
    assert codes(errors) == ["PERSISTED_QUERY_NOT_ALLOWED"], errors
    assert "trusted documents" in errors[0]["message"]


async def test_a_listed_document_runs_by_hash_or_as_its_text(trusted_server: RunningServer, user_id: str) -> None:
    expected = {"data": {"viewer": {"userId": user_id}}}
    assert (await post(trusted_server, user_id, by_hash(VIEWER))).json() == expected
    assert (await post(trusted_server, user_id, {"query": VIEWER})).json() == expected
    assert (await post(trusted_server, user_id, {"query": VIEWER, **by_hash(VIEWER)})).json() == expected
    async with httpx.AsyncClient(timeout=30) as client:
        params = {"extensions": json.dumps(by_hash(VIEWER)["extensions"])}
        got = await client.get(trusted_server.http_url, params=params, headers=bearer(make_token(user_id)))
    assert got.json() == expected


@pytest.mark.parametrize(
    "body",
    [
        {"query": UNLISTED},
        {"query": VIEWER + " "},  # not byte-identical
        by_hash(UNLISTED),
        {"query": UNLISTED, **by_hash(UNLISTED)},  # registering is no way in
        {"query": UNLISTED, **by_hash(VIEWER)},  # a listed hash with another document
        {"query": "{ __typename viewer { userId } }"},  # introspection beside data
    ],
    ids=["unlisted text", "changed text", "unlisted hash", "registration", "listed hash, other text", "mixed"],
)
async def test_anything_else_is_refused_before_it_runs(
    trusted_server: RunningServer, user_id: str, body: dict[str, Any]
) -> None:
    assert_not_allowed(await post(trusted_server, user_id, body))


async def test_introspection_alone_stays_allowed(trusted_server: RunningServer, user_id: str) -> None:
    answer = (await post(trusted_server, user_id, {"query": INTROSPECTION})).json()
    assert answer["data"]["__schema"]["queryType"]["name"] == "Query"


async def test_websockets_run_only_listed_documents(trusted_server: RunningServer, user_id: str) -> None:
    token = make_token(user_id)
    async with acknowledged_ws(trusted_server, token) as ws:
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": RUN}}))
        await ws.send(json.dumps({"id": "2", "type": "subscribe", "payload": by_hash(RUN)}))
        await ws.send(json.dumps({"id": "3", "type": "subscribe", "payload": {"query": UNLISTED}}))
        # What urql's persistedExchange sends over graphql-ws: an empty query beside the hash.
        await ws.send(json.dumps({"id": "4", "type": "subscribe", "payload": {"query": "", **by_hash(RUN)}}))
        seen: dict[str, list[dict[str, Any]]] = {"1": [], "2": [], "3": [], "4": []}
        done: set[str] = set()
        while done != {"1", "2", "3", "4"}:
            message = await receive(ws)
            seen[message["id"]].append(message)
            if message["type"] in ("complete", "error"):
                done.add(message["id"])
    for listed in ("1", "2", "4"):
        kinds = [m["payload"]["data"]["runAgent"]["__typename"] for m in seen[listed] if m["type"] == "next"]
        assert kinds[0] == "RunStarted" and kinds[-1] == "RunCompleted", seen[listed]
    assert [m["type"] for m in seen["3"]] == ["error"]
    assert codes(seen["3"][0]["payload"]) == ["PERSISTED_QUERY_NOT_ALLOWED"]


async def test_the_legacy_websocket_protocol_is_held_to_the_list_too(
    trusted_server: RunningServer, user_id: str
) -> None:
    async with acknowledged_ws(trusted_server, make_token(user_id), subprotocol=LEGACY_WS) as ws:
        await ws.send(json.dumps({"id": "1", "type": "start", "payload": {"query": UNLISTED}}))
        refused = await receive(ws)
    assert refused["type"] == "error" and refused["id"] == "1"
    assert refused["payload"]["extensions"]["code"] == "PERSISTED_QUERY_NOT_ALLOWED"


@pytest.fixture(scope="module")
def closed_server(
    new_database_url: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    manifest = manifest_file(tmp_path_factory.mktemp("manifest-closed"))
    with serving_with(
        new_database_url, tmp_path_factory, "trusted-closed", trusted_documents=str(manifest), introspection=False
    ) as running:
        yield running


async def test_without_introspection_even_the_schema_is_refused(closed_server: RunningServer, user_id: str) -> None:
    assert_not_allowed(await post(closed_server, user_id, {"query": INTROSPECTION}))


@pytest.mark.parametrize(
    "content", ["not json", "[1, 2]", '{"abc": 5}'], ids=["not JSON", "a list", "a document not a string"]
)
def test_a_bad_manifest_is_a_clear_startup_error(tmp_path: Path, content: str) -> None:
    manifest = tmp_path / "manifest.json"
    manifest.write_text(content)
    settings = server_settings(f"sqlite:///{tmp_path / 'x.db'}", tmp_path, trusted_documents=str(manifest))
    with pytest.raises(SettingsError, match="AGNO_GRAPHQL_TRUSTED_DOCUMENTS"):
        build_services(settings)

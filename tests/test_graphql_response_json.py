"""GraphQL over HTTP's media type, on SQLite and MariaDB: a client that accepts application/graphql-response+json
gets it, and a request that fails before execution as a 400 with no `data`; application/json keeps its 200s.
(graphql-http's own audits run in clients/js.)"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.client import bearer
from tests.conftest import RunningServer, make_token
from tests.matrix_support import codes

GRAPHQL_RESPONSE = "application/graphql-response+json"
APOLLO_ACCEPT = "application/graphql-response+json,application/json;q=0.9"
PAGE = "query($n: Int!) { sessions(first: $n) { nodes { id } } }"

REQUEST_ERRORS = {
    "a document that does not parse": ({"query": "{"}, "GRAPHQL_PARSE_FAILED"),
    "a field the schema does not have": ({"query": "{ nope }"}, "GRAPHQL_VALIDATION_FAILED"),
    "a variable of the wrong type": ({"query": PAGE, "variables": {"n": "many"}}, None),
}


async def post(server: RunningServer, user_id: str | None, accept: str, body: dict[str, Any]) -> httpx.Response:
    headers = {"Accept": accept, **(bearer(make_token(user_id)) if user_id else {})}
    async with httpx.AsyncClient(timeout=30) as client:
        return await client.post(server.http_url, json=body, headers=headers)


@pytest.mark.parametrize("accept", [GRAPHQL_RESPONSE, APOLLO_ACCEPT])
@pytest.mark.parametrize("case", list(REQUEST_ERRORS))
async def test_a_request_error_is_a_400_without_data(
    server: RunningServer, user_id: str, accept: str, case: str
) -> None:
    body, code = REQUEST_ERRORS[case]
    response = await post(server, user_id, accept, body)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith(GRAPHQL_RESPONSE)
    answer = response.json()
    assert "data" not in answer and answer["errors"], answer
    if code is not None:
        assert codes(answer["errors"]) == [code]


@pytest.mark.parametrize("case", list(REQUEST_ERRORS))
async def test_application_json_keeps_its_200s(server: RunningServer, user_id: str, case: str) -> None:
    response = await post(server, user_id, "application/json", REQUEST_ERRORS[case][0])
    assert response.status_code == 200 and response.headers["content-type"].startswith("application/json")
    assert response.json()["data"] is None


async def test_data_and_field_errors_are_200s(server: RunningServer, user_id: str) -> None:
    ok = await post(server, user_id, GRAPHQL_RESPONSE, {"query": "{ viewer { userId } }"})
    assert (ok.status_code, ok.json()) == (200, {"data": {"viewer": {"userId": user_id}}})
    assert ok.headers["content-type"].startswith(GRAPHQL_RESPONSE)
    # Executed: the error is the field's (it has a path), not the request's.
    anonymous = await post(server, None, GRAPHQL_RESPONSE, {"query": "{ viewer { userId } }"})
    assert anonymous.status_code == 200 and codes(anonymous.json()["errors"]) == ["UNAUTHENTICATED"]
    assert "data" in anonymous.json()


async def test_a_malformed_request_answers_in_the_type_asked_for(server: RunningServer, user_id: str) -> None:
    response = await post(server, user_id, GRAPHQL_RESPONSE, {"variables": {}})
    assert response.status_code == 400 and response.headers["content-type"].startswith(GRAPHQL_RESPONSE)
    assert codes(response.json()["errors"]) == ["BAD_REQUEST"]


def test_responses_and_messages_are_json_text_whatever_they_hold() -> None:
    """orjson encodes them; what it does not take (an integer past 64 bits, a key that is no string, in a JSON
    scalar) is encoded by json.dumps, never refused."""
    import json

    from agno_graphql.app import GraphQLApp

    view = object.__new__(GraphQLApp)
    message = {"id": "1", "type": "next", "payload": {"data": {"runAgent": {"delta": 'héllo 🌍 "q" \n'}}}}
    for data in (message, {"data": {"metadata": {"big": 2**70}}}, {"data": {"metadata": {1: "int key"}}}):
        encoded = view.encode_json(data)
        assert isinstance(encoded, str)
        assert json.loads(encoded) == json.loads(json.dumps(data))

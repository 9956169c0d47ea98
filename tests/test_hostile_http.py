"""Hostile HTTP requests: each is refused with a 4xx and a coded GraphQL error, never a 500 or an
INTERNAL_SERVER_ERROR, and the server serves on. (Body size, depth, aliases, tokens and mutations over GET:
test_limits.)
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.client import bearer, operation, post
from tests.conftest import RunningServer, make_token
from tests.matrix_support import RENAME_SESSION, codes, create_session
from tests.test_http_streaming import MULTIPART_ACCEPT, SSE_ACCEPT, multipart_parts, sse_events

VIEWER = "{ viewer { userId } }"


async def send(server: RunningServer, user_id: str, method: str = "POST", **request: Any) -> httpx.Response:
    headers = {**bearer(make_token(user_id)), **request.pop("headers", {})}
    async with httpx.AsyncClient(timeout=30) as client:
        return await client.request(method, server.http_url, headers=headers, **request)


def assert_bad_request(response: httpx.Response, *words: str) -> None:
    """A 400 whose body is a GraphQL error coded BAD_REQUEST, whose message has `words`."""
    assert response.status_code == 400, response.text
    body = response.json()
    assert codes(body["errors"]) == ["BAD_REQUEST"], body
    for word in words:
        assert word.lower() in body["errors"][0]["message"].lower(), body


async def assert_still_serving(server: RunningServer, user_id: str) -> None:
    assert await post(server, make_token(user_id), VIEWER) == {"data": {"viewer": {"userId": user_id}}}


async def test_a_batch_is_refused_as_not_enabled(server: RunningServer, user_id: str) -> None:
    response = await send(server, user_id, json=[{"query": VIEWER}, {"query": VIEWER}])
    assert_bad_request(response, "batching")
    await assert_still_serving(server, user_id)


# Each of these was a 500 (Strawberry read the body as an object).
NOT_AN_OBJECT = {"a string": b'"{ viewer { userId } }"', "a number": b"5", "null": b"null", "true": b"true"}


@pytest.mark.parametrize("case", list(NOT_AN_OBJECT))
async def test_a_json_body_that_is_not_an_object_is_a_bad_request(
    server: RunningServer, user_id: str, case: str
) -> None:
    response = await send(server, user_id, content=NOT_AN_OBJECT[case], headers={"Content-Type": "application/json"})
    assert_bad_request(response, "JSON object")
    await assert_still_serving(server, user_id)


async def test_a_body_that_is_not_utf8_is_a_bad_request(server: RunningServer, user_id: str) -> None:
    """Was a 500: the JSON decoder met bytes it could not decode."""
    body = b'{"query": "{ viewer { userId } }", "x": "\xff\xfe"}'
    response = await send(server, user_id, content=body, headers={"Content-Type": "application/json"})
    assert_bad_request(response, "UTF-8")


async def test_json_nested_too_deeply_is_a_bad_request(server: RunningServer, user_id: str) -> None:
    """Was a 500: the JSON decoder ran out of stack (RecursionError) on 100,000 nested lists (200 kB)."""
    nested = "[" * 100_000 + "]" * 100_000
    body = f'{{"query": "{{ viewer {{ userId }} }}", "variables": {{"a": {nested}}}}}'
    response = await send(server, user_id, content=body, headers={"Content-Type": "application/json"})
    assert_bad_request(response, "nested too deeply")
    shallow = "[" * 3000 + "]" * 3000
    response = await send(server, user_id, "GET", params={"query": VIEWER, "variables": shallow})
    assert_bad_request(response, "nested too deeply")
    await assert_still_serving(server, user_id)


async def test_a_body_that_is_not_json_is_a_bad_request(server: RunningServer, user_id: str) -> None:
    response = await send(server, user_id, content=b'{"query": ', headers={"Content-Type": "application/json"})
    assert_bad_request(response, "JSON")


WRONG_CONTENT_TYPES: dict[str, dict[str, Any]] = {
    "text/plain": {"content": json.dumps({"query": VIEWER}), "headers": {"Content-Type": "text/plain"}},
    "form-encoded": {"data": {"query": VIEWER}},
    "application/graphql": {"content": VIEWER, "headers": {"Content-Type": "application/graphql"}},
    "none": {"content": json.dumps({"query": VIEWER})},
}


@pytest.mark.parametrize("case", list(WRONG_CONTENT_TYPES))
async def test_a_wrong_content_type_is_a_bad_request_that_says_what_to_send(
    server: RunningServer, user_id: str, case: str
) -> None:
    response = await send(server, user_id, **WRONG_CONTENT_TYPES[case])
    assert_bad_request(response, "content type", "application/json")


UPLOAD = "mutation($file: Upload!) { uploadAttachment(input: {file: $file}) { attachment { id } } }"
FILE = ("notes.txt", b"hello")


def multipart(operations: Any, file_map: Any, name: str = "0") -> dict[str, Any]:
    fields = {"operations": json.dumps(operations), "map": json.dumps(file_map)}
    return {"data": fields, "files": {name: FILE}}


# Each was a 500 or a silently ignored file before the layout of the spec was checked.
BAD_MULTIPARTS: dict[str, tuple[dict[str, Any], str]] = {
    "no operations nor map": ({"files": {"file": FILE}}, "operations and map"),
    "no map": ({"data": {"operations": json.dumps({"query": UPLOAD})}, "files": {"0": FILE}}, "operations and map"),
    "a file the map leaves out": (multipart({"query": VIEWER}, {}), "named in map"),
    "a map naming no file": (
        multipart({"query": UPLOAD, "variables": {"file": None}}, {"1": ["variables.file"]}),
        "map",
    ),
    "a map that is a list": (multipart({"query": UPLOAD, "variables": {"file": None}}, [["variables.file"]]), "map"),
    "a map path outside the variables": (
        multipart({"query": UPLOAD, "variables": {"file": None}}, {"0": ["query"]}),
        "query",
    ),
    "a map path to no variable": (
        multipart({"query": UPLOAD, "variables": {}}, {"0": ["variables.file"]}),
        "variables.file",
    ),
    "a map path into a string": (
        multipart({"query": UPLOAD, "variables": {"file": "x"}}, {"0": ["variables.file.0"]}),
        "variables.file.0",
    ),
    "a map path to a taken variable": (
        multipart({"query": UPLOAD, "variables": {"file": "x"}}, {"0": ["variables.file"]}),
        "null variable",
    ),
    "a batch of operations": (multipart([{"query": UPLOAD}], {"0": ["0.variables.file"]}), "one operation"),
    "operations that are not JSON": (
        {"data": {"operations": "{", "map": json.dumps({"0": ["variables.file"]})}, "files": {"0": FILE}},
        "JSON",
    ),
}


@pytest.mark.parametrize("case", list(BAD_MULTIPARTS))
async def test_a_multipart_request_off_the_spec_is_a_bad_request_that_says_why(
    server: RunningServer, user_id: str, case: str
) -> None:
    request, words = BAD_MULTIPARTS[case]
    response = await send(server, user_id, **request)
    assert_bad_request(response, words)
    await assert_still_serving(server, user_id)


BAD_FIELDS = {
    "query a number": ({"query": 5}, "query"),
    "query a list": ({"query": [VIEWER]}, "query"),
    "variables a list": ({"query": VIEWER, "variables": [1]}, "variables"),
    "variables a string": ({"query": VIEWER, "variables": "{}"}, "variables"),
    "extensions a string": ({"query": VIEWER, "extensions": "x"}, "extensions"),
    "no query": ({"variables": {}}, "query"),
    "unknown operationName": ({"query": VIEWER, "operationName": "Nope"}, "Nope"),
}


@pytest.mark.parametrize("case", list(BAD_FIELDS))
async def test_a_request_field_of_the_wrong_type_is_a_bad_request(
    server: RunningServer, user_id: str, case: str
) -> None:
    body, named = BAD_FIELDS[case]
    assert_bad_request(await send(server, user_id, json=body), named)


SESSION_EVENTS = "subscription { sessionEvents { kind sessionId } }"


@pytest.mark.parametrize("method", ["POST", "GET"])
async def test_a_subscription_over_plain_http_is_a_bad_request_that_says_how(
    server: RunningServer, user_id: str, method: str
) -> None:
    """Was INTERNAL_SERVER_ERROR: executed as a query, the subscription field resolved to null."""
    request: dict[str, Any] = {"json": {"query": SESSION_EVENTS}} if method == "POST" else {}
    if method == "GET":
        request["params"] = {"query": SESSION_EVENTS}
    response = await send(server, user_id, method, headers={"Accept": "application/json"}, **request)
    assert_bad_request(response, "websocket", "text/event-stream")


async def test_a_mutation_over_get_is_a_coded_bad_request(server: RunningServer, user_id: str) -> None:
    params = {"query": operation("CreateSession"), "variables": json.dumps({"input": {"agentId": "assistant"}})}
    response = await send(server, user_id, "GET", params=params, headers={"Accept": "application/json"})
    assert_bad_request(response, "POST")
    assert (await post(server, make_token(user_id), "{ sessions { totalCount } }"))["data"]["sessions"] == {
        "totalCount": 0
    }


FRAGMENT_CYCLES = {
    "a fragment spreading itself": "{ viewer { ...A } } fragment A on Viewer { userId ...A }",
    "two fragments spreading each other": "{ viewer { ...A } } fragment A on Viewer { ...B } "
    "fragment B on Viewer { userId ...A }",
    "a cycle through fields": "{ sessions { nodes { ...S } } } "
    "fragment S on Session { agent { sessions { nodes { ...S } } } }",
}


@pytest.mark.parametrize("case", list(FRAGMENT_CYCLES))
async def test_a_fragment_cycle_fails_validation(server: RunningServer, user_id: str, case: str) -> None:
    response = await post(server, make_token(user_id), FRAGMENT_CYCLES[case])
    assert response.get("data") is None
    assert set(codes(response["errors"])) == {"GRAPHQL_VALIDATION_FAILED"}, response
    assert any("within itself" in error["message"] for error in response["errors"])


def deep_through_fragments(levels: int) -> str:
    """A query nested `levels` deep, each level hidden in its own fragment."""
    level = "fragment L{0} on Session {{ agent {{ sessions {{ nodes {{ ...L{1} }} }} }} }}"
    fragments = [level.format(i, i + 1) for i in range(levels)]
    fragments.append(f"fragment L{levels} on Session {{ id }}")
    return "{ sessions { nodes { ...L0 } } } " + " ".join(fragments)


async def test_depth_hidden_in_fragments_is_still_limited(server: RunningServer, user_id: str) -> None:
    response = await post(server, make_token(user_id), deep_through_fragments(10))
    assert response.get("data") is None
    assert codes(response["errors"]) == ["GRAPHQL_VALIDATION_FAILED"]
    assert "depth" in response["errors"][0]["message"]


async def test_a_wide_query_is_stopped_by_the_token_limit(server: RunningServer, user_id: str) -> None:
    """Without aliases, repeating fields is the way to go wide; the token limit bounds it."""
    wide = "{ " + "viewer { userId } " * 1000 + "}"
    response = await post(server, make_token(user_id), wide)
    assert response.get("data") is None
    assert codes(response["errors"]) == ["GRAPHQL_PARSE_FAILED"]


async def test_many_fragments_on_one_field_are_bounded_too(server: RunningServer, user_id: str) -> None:
    fragments = " ".join(f"fragment F{i} on Viewer {{ userId }}" for i in range(400))
    spreads = " ".join(f"...F{i}" for i in range(400))
    response = await post(server, make_token(user_id), f"{{ viewer {{ {spreads} }} }} {fragments}")
    assert response.get("data") is None
    assert codes(response["errors"]) == ["GRAPHQL_PARSE_FAILED"]


async def test_a_very_long_string_argument_is_bad_user_input_or_not_found(server: RunningServer, user_id: str) -> None:
    token = make_token(user_id)
    session = await create_session(server, token, "assistant", name="Short")
    long_text = "n" * 500_000
    renamed = await post(server, token, RENAME_SESSION, {"input": {"sessionId": session["id"], "name": long_text}})
    assert codes(renamed["errors"]) == ["BAD_USER_INPUT"]
    inline = f'{{ session(id: "{long_text}") {{ id }} }}'
    assert await post(server, token, inline) == {"data": {"session": None}}
    named = await post(server, token, "query($id: ID!) { session(id: $id) { name } }", {"id": session["id"]})
    assert named == {"data": {"session": {"name": "Short"}}}


async def streamed_errors(server: RunningServer, user_id: str, accept: str, body: dict[str, Any]) -> list[Any]:
    """The errors of the one result an SSE or multipart response carries."""
    headers = {**bearer(make_token(user_id)), "Accept": accept}
    async with (
        httpx.AsyncClient(timeout=30) as client,
        client.stream("POST", server.http_url, json=body, headers=headers) as response,
    ):
        assert response.status_code == 200
        if accept == SSE_ACCEPT:
            events = await sse_events(response)
            assert [name for name, _ in events] == ["next", "complete"], events
            results = [json.loads(events[0][1])]
        else:
            parts = multipart_parts((await response.aread()).decode(), "graphql")
            results = [part["payload"] for part in parts if part != {}]
    assert len(results) == 1 and results[0]["data"] is None, results
    return list(results[0]["errors"])


STREAMED_BAD_REQUESTS = {
    "an unknown operationName over SSE": (SSE_ACCEPT, {"query": SESSION_EVENTS, "operationName": "Nope"}),
    "an unknown operationName over multipart": (MULTIPART_ACCEPT, {"query": SESSION_EVENTS, "operationName": "Nope"}),
    "a mutation over multipart subscriptions": (
        MULTIPART_ACCEPT,
        {"query": 'mutation { deleteSession(input: {sessionId: "x"}) { deletedSessionId } }'},
    ),
}


@pytest.mark.parametrize("case", list(STREAMED_BAD_REQUESTS))
async def test_a_streamed_request_that_cannot_run_is_a_coded_bad_request(
    server: RunningServer, user_id: str, case: str
) -> None:
    """Were INTERNAL_SERVER_ERROR: Strawberry streams these as errors wrapping its own exceptions."""
    accept, body = STREAMED_BAD_REQUESTS[case]
    errors = await streamed_errors(server, user_id, accept, body)
    assert codes(errors) == ["BAD_REQUEST"], errors

"""runAgent over plain HTTP, for clients behind proxies that drop websockets: graphql-sse and multipart.

graphql-sse (distinct connections mode): POST with `Accept: text/event-stream`, one `next` event per result,
then `complete`. Multipart subscriptions (Apollo Client's HttpLink): POST with
`Accept: multipart/mixed;subscriptionSpec=1.0`, one part `{"payload": result}` per result, `{}` heartbeats.
Both authenticate with the Authorization header, like every HTTP request.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from tests.client import RUN_AGENT, bearer, execute
from tests.conftest import RunningServer, make_token
from tests.matrix_support import MESSAGES, acknowledged_ws, create_session

SSE_ACCEPT = "text/event-stream"
MULTIPART_ACCEPT = 'multipart/mixed;boundary="graphql";subscriptionSpec=1.0,application/json'
PROTOCOLS = ["sse", "multipart"]
OTHER_SECRET = "another-secret-not-the-servers-0123456789"
BAD_FIELD = 'subscription { runAgent(input: {agentId: "assistant", message: "x"}) { nope } }'


@asynccontextmanager
async def open_stream(
    server: RunningServer,
    token: str | None,
    protocol: str,
    document: str | None,
    variables: dict[str, Any] | None = None,
    extensions: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> AsyncIterator[httpx.Response]:
    """A streamed operation's response; without a document, it is named by `extensions` (a persisted query)."""
    headers = {"Accept": SSE_ACCEPT if protocol == "sse" else MULTIPART_ACCEPT, **(headers or {})}
    if token is not None:
        headers.update(bearer(token))
    body: dict[str, Any] = {"variables": variables}
    if document is not None:
        body["query"] = document
    if extensions is not None:
        body["extensions"] = extensions
    async with (
        httpx.AsyncClient(timeout=httpx.Timeout(30)) as client,
        client.stream("POST", server.http_url, json=body, headers=headers) as response,
    ):
        yield response


async def sse_events(response: httpx.Response) -> list[tuple[str, str]]:
    """(event, data) pairs of a text/event-stream, comments (heartbeats) left out."""
    events: list[tuple[str, str]] = []
    event, data = "", []
    async for line in response.aiter_lines():
        if line == "":
            if event or data:
                events.append((event, "\n".join(data)))
            event, data = "", []
        elif line.startswith(":"):
            continue
        elif line.startswith("event:"):
            event = line.removeprefix("event:").strip()
        elif line.startswith("data:"):
            data.append(line.removeprefix("data:").strip())
    return events


def multipart_parts(body: str, boundary: str) -> list[Any]:
    """The JSON bodies of a multipart/mixed response, in order (empty parts between boundaries left out)."""
    parts: list[Any] = []
    for chunk in body.split(f"--{boundary}"):
        headers, separator, content = chunk.partition("\r\n\r\n")
        if not separator:
            continue
        assert "application/json" in headers.lower()
        parts.append(json.loads(content.strip()))
    return parts


async def stream_results(stream: AbstractAsyncContextManager[httpx.Response]) -> list[dict[str, Any]]:
    """Every GraphQL result of one operation streamed by `open_stream`, checking on the way the framing of the
    protocol its Accept header asked for."""
    async with stream as response:
        assert response.status_code == 200
        content_type = response.headers["content-type"]
        if response.request.headers["accept"] == SSE_ACCEPT:
            assert content_type.startswith("text/event-stream")
            events = await sse_events(response)
            assert events[-1] == ("complete", "")
            assert {name for name, _ in events[:-1]} == {"next"}
            return [json.loads(data) for _, data in events[:-1]]
        assert content_type.startswith("multipart/mixed")
        assert "boundary=graphql" in content_type and "subscriptionSpec=1.0" in content_type
        body = (await response.aread()).decode()
        assert body.rstrip().endswith("--graphql--")
        parts = multipart_parts(body, "graphql")
        # `{}` is a heartbeat; every other part carries one result as its payload.
        return [part["payload"] for part in parts if part != {}]


def run_input(agent_id: str, message: str, session_id: str | None = None) -> dict[str, Any]:
    return {"input": {"agentId": agent_id, "message": message, "sessionId": session_id}}


def error_codes(result: dict[str, Any]) -> list[str]:
    return [error["extensions"]["code"] for error in result.get("errors") or []]


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_calculator_run_streams_its_tool_call_and_answer(
    server: RunningServer, token: str, protocol: str
) -> None:
    results = await stream_results(
        open_stream(server, token, protocol, RUN_AGENT, run_input("calculator", "What is 12 * 7?"))
    )
    assert all("errors" not in result for result in results)
    events = [result["data"]["runAgent"] for result in results]
    kinds = [event["__typename"] for event in events]
    assert kinds[0] == "RunStarted" and kinds[-1] == "RunCompleted"
    assert kinds.index("ToolCallStarted") < kinds.index("ToolCallCompleted") < kinds.index("RunContentDelta")
    started = next(event for event in events if event["__typename"] == "ToolCallStarted")
    completed = next(event for event in events if event["__typename"] == "ToolCallCompleted")
    assert started["toolCall"]["name"] == "multiply"
    assert completed["result"] == "84" and completed["failed"] is False
    answer = "".join(event["delta"] for event in events if event["__typename"] == "RunContentDelta")
    assert answer == events[-1]["content"] == "The answer is 84."
    assert [event["index"] for event in events] == list(range(len(events)))


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_run_over_http_continues_a_session_and_is_stored(
    server: RunningServer, token: str, protocol: str
) -> None:
    session_id = (await create_session(server, token))["id"]
    results = await stream_results(
        open_stream(server, token, protocol, RUN_AGENT, run_input("assistant", "over http", session_id))
    )
    events = [result["data"]["runAgent"] for result in results]
    assert {event["sessionId"] for event in events} == {session_id}
    assert events[-1]["content"] == "You said: over http"
    history = await execute(server, token, MESSAGES, {"id": session_id, "last": 10})
    messages = [edge["node"] for edge in history["session"]["messages"]["edges"]]
    conversation = [(message["role"], message["content"]) for message in messages]
    assert conversation == [("USER", "over http"), ("ASSISTANT", "You said: over http")]


async def test_query_over_sse_gives_one_result_then_completes(server: RunningServer, user_id: str) -> None:
    results = await stream_results(open_stream(server, make_token(user_id), "sse", "query { viewer { userId } }"))
    assert results == [{"data": {"viewer": {"userId": user_id}}}]


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("token", [None, "not-a-jwt", make_token("mallory", secret=OTHER_SECRET)])
async def test_run_without_a_valid_token_is_refused(server: RunningServer, protocol: str, token: str | None) -> None:
    results = await stream_results(open_stream(server, token, protocol, RUN_AGENT, run_input("assistant", "hello")))
    assert len(results) == 1
    assert results[0]["data"] is None
    assert error_codes(results[0]) == ["UNAUTHENTICATED"]


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize(
    ("document", "code"),
    [
        ("subscription { runAgent(", "GRAPHQL_PARSE_FAILED"),
        (BAD_FIELD, "GRAPHQL_VALIDATION_FAILED"),
    ],
)
async def test_bad_document_gives_one_coded_error(
    server: RunningServer, user_id: str, protocol: str, document: str, code: str
) -> None:
    results = await stream_results(open_stream(server, make_token(user_id), protocol, document))
    assert len(results) == 1
    assert results[0]["data"] is None
    assert error_codes(results[0]) == [code]


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_unknown_agent_over_http_gives_a_coded_error(server: RunningServer, user_id: str, protocol: str) -> None:
    results = await stream_results(
        open_stream(server, make_token(user_id), protocol, RUN_AGENT, run_input("nobody", "hello"))
    )
    assert len(results) == 1
    assert error_codes(results[0]) == ["NOT_FOUND"]


async def test_syntax_error_over_websocket_closes_with_4400(server: RunningServer, user_id: str) -> None:
    """The same parse error on graphql-transport-ws: the protocol's close code 4400, naming the error."""
    async with acknowledged_ws(server, make_token(user_id)) as ws:
        await ws.send(json.dumps({"type": "subscribe", "id": "1", "payload": {"query": "subscription { runAgent("}}))
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4400
    assert "Syntax Error" in closed.value.rcvd.reason


URQL_QUERY_ACCEPT = (
    "application/graphql-response+json, application/graphql+json, application/json, text/event-stream, multipart/mixed"
)


@pytest.mark.parametrize(
    ("accept", "content_type"),
    [
        # urql's Accept on every query: GraphQL over HTTP's JSON type preferred, streams allowed.
        (URQL_QUERY_ACCEPT, "application/graphql-response+json"),
        ("application/json, application/graphql-response+json", "application/json"),
        # urql's Accept on subscriptions sent by fetch.
        ("text/event-stream, multipart/mixed", "text/event-stream"),
        ("application/json;q=0.5, text/event-stream", "text/event-stream"),
        ("text/event-stream;q=0.2, application/json", "application/json"),
        # multipart/mixed without subscriptionSpec is not the subscription protocol: the next choice wins.
        ("multipart/mixed, application/json", "application/json"),
        ("*/*", "application/json"),
    ],
)
async def test_the_most_preferred_accepted_type_picks_the_response(
    server: RunningServer, user_id: str, accept: str, content_type: str
) -> None:
    headers = {**bearer(make_token(user_id)), "Accept": accept}
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(server.http_url, json={"query": "query { viewer { userId } }"}, headers=headers)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(content_type)
    assert user_id in response.text


async def test_sse_lines_end_with_a_line_feed_alone(server: RunningServer, user_id: str) -> None:
    """CRLF is valid event-stream, but urql's parser looks for a blank LF line between events."""
    async with open_stream(server, make_token(user_id), "sse", "query { viewer { userId } }") as response:
        raw = await response.aread()
    assert b"\r" not in raw
    assert raw.endswith(b"event: complete\ndata: \n\n")

"""Real clients for the tests: gql over HTTP and graphql-transport-ws, httpx for raw responses."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import httpx
from gql import Client, gql
from gql.transport.aiohttp import AIOHTTPTransport
from gql.transport.websockets import WebsocketsTransport
from graphql import parse, print_ast, separate_operations

from tests.conftest import RunningServer

TRANSPORT_WS = WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL
LEGACY_WS = WebsocketsTransport.APOLLO_SUBPROTOCOL
OPERATIONS_DIR = Path(__file__).resolve().parent / "operations"
SHARED_FRAGMENTS = OPERATIONS_DIR / "fragments.graphql"


@functools.cache
def operation(name: str) -> str:
    """The document of tests/operations/<name>.graphql with the shared fragments it spreads (fragments.graphql
    holds the ones several operations use), as a frontend's build sends it."""
    text = (OPERATIONS_DIR / f"{name}.graphql").read_text() + "\n" + SHARED_FRAGMENTS.read_text()
    return print_ast(separate_operations(parse(text))[name])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def execute(server: RunningServer, token: str, document: str, variables: dict[str, Any] | None = None) -> Any:
    """A query or mutation through gql over HTTP; raises TransportQueryError when the response has errors."""
    transport = AIOHTTPTransport(url=server.http_url, headers=bearer(token))
    async with Client(transport=transport, fetch_schema_from_transport=False) as session:
        return await session.execute(gql(document), variable_values=variables)


async def post(
    server: RunningServer, token: str | None, document: str, variables: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The raw JSON response of a POST, to look at errors and their codes."""
    headers = bearer(token) if token else {}
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(server.http_url, json={"query": document, "variables": variables}, headers=headers)
    return dict(response.json())


def ws_transport(server: RunningServer, token: str | None, subprotocol: str = TRANSPORT_WS) -> WebsocketsTransport:
    payload = {"Authorization": f"Bearer {token}"} if token else {}
    return WebsocketsTransport(url=server.ws_url, init_payload=payload, subprotocols=[subprotocol], close_timeout=2)


async def subscribe(
    server: RunningServer,
    token: str,
    document: str,
    variables: dict[str, Any] | None = None,
    subprotocol: str = TRANSPORT_WS,
) -> list[dict[str, Any]]:
    """Every event of a subscription over a websocket, until it completes."""
    events: list[dict[str, Any]] = []
    async with Client(transport=ws_transport(server, token, subprotocol), fetch_schema_from_transport=False) as session:
        async for result in session.subscribe(gql(document), variable_values=variables):
            events.append(result)
    return events


RUN_AGENT = """
subscription Run($input: RunAgentInput!) {
  runAgent(input: $input) {
    __typename runId sessionId index createdAt
    ... on RunStarted { agentId model { provider id } }
    ... on RunContentDelta { delta }
    ... on ReasoningDelta { delta }
    ... on ToolCallStarted { toolCall { id name arguments } }
    ... on ToolCallCompleted { toolCall { id name arguments } result failed }
    ... on RunCompleted { content metrics { inputTokens outputTokens totalTokens durationMs } }
    ... on RunFailed { message code }
    ... on RunCancelled { reason content }
    ... on RunQueued { position }
  }
}
"""


async def run_agent(
    server: RunningServer,
    token: str,
    agent_id: str,
    message: str,
    session_id: str | None = None,
    subprotocol: str = TRANSPORT_WS,
) -> list[dict[str, Any]]:
    """The events of one run, each the `runAgent` object."""
    variables = {"input": {"agentId": agent_id, "message": message, "sessionId": session_id}}
    results = await subscribe(server, token, RUN_AGENT, variables, subprotocol)
    return [result["runAgent"] for result in results]

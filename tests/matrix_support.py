"""Shared helpers of the isolation, bad-input, limits, pagination and streaming tests.

Only real clients: gql and httpx over HTTP, gql and the raw `websockets` library over websockets.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, Protocol

from gql.transport.exceptions import TransportQueryError
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

from tests.client import RUN_AGENT, TRANSPORT_WS, execute, operation
from tests.conftest import RunningServer

RENAME_SESSION = """
mutation Rename($input: RenameSessionInput!) {
  renameSession(input: $input) { session { id name } }
}
"""
DELETE_SESSION = """
mutation Delete($input: DeleteSessionInput!) {
  deleteSession(input: $input) { deletedSessionId }
}
"""
SESSION_NODE = "id agentId name runCount createdAt updatedAt"
SESSIONS = f"""
query Sessions($agentId: ID, $first: Int, $after: String, $last: Int, $before: String, $orderBy: SessionOrder) {{
  sessions(agentId: $agentId, first: $first, after: $after, last: $last, before: $before, orderBy: $orderBy) {{
    totalCount
    pageInfo {{ hasNextPage hasPreviousPage startCursor endCursor }}
    edges {{ cursor node {{ {SESSION_NODE} }} }}
  }}
}}
"""
AGENT_SESSIONS = f"""
query AgentSessions($id: ID!, $first: Int, $after: String, $last: Int, $before: String, $orderBy: SessionOrder) {{
  agent(id: $id) {{
    id
    sessions(first: $first, after: $after, last: $last, before: $before, orderBy: $orderBy) {{
      totalCount
      pageInfo {{ hasNextPage hasPreviousPage startCursor endCursor }}
      edges {{ cursor node {{ {SESSION_NODE} }} }}
    }}
  }}
}}
"""
SESSION = f"""
query Session($id: ID!) {{
  session(id: $id) {{ {SESSION_NODE} }}
}}
"""
MESSAGES = """
query Messages($id: ID!, $first: Int, $after: String, $last: Int, $before: String, $roles: [MessageRole!]) {
  session(id: $id) {
    id
    messages(first: $first, after: $after, last: $last, before: $before, roles: $roles) {
      totalCount
      pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
      edges { cursor node { id runId role content toolCalls { id name arguments } toolCallId toolName } }
    }
  }
}
"""
RUNS = """
query Runs($id: ID!, $first: Int, $after: String, $last: Int, $before: String) {
  session(id: $id) {
    id
    runs(first: $first, after: $after, last: $last, before: $before) {
      totalCount
      pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
      edges { cursor node { id sessionId agentId status input content createdAt
        metrics { inputTokens outputTokens totalTokens durationMs } } }
    }
  }
}
"""
SNAPSHOT = """
query Snapshot {
  sessions(first: 40) {
    totalCount
    nodes {
      id agentId name runCount createdAt updatedAt
      messages(first: 100, roles: [SYSTEM, USER, ASSISTANT, TOOL]) { totalCount nodes { id role content } }
      runs(first: 100) { nodes { id status input content } }
    }
  }
}
"""
SESSION_SNAPSHOT = """
query SessionSnapshot($id: ID!) {
  session(id: $id) {
    id agentId name runCount createdAt updatedAt
    messages(first: 100, roles: [SYSTEM, USER, ASSISTANT, TOOL]) { totalCount nodes { id role content } }
    runs(first: 100) { nodes { id status input content } }
  }
}
"""


async def create_session(
    server: RunningServer,
    token: str,
    agent_id: str = "assistant",
    name: str | None = None,
    session_id: str | None = None,
) -> dict[str, Any]:
    """A new empty session through tests/operations/CreateSession.graphql: its fields as the mutation returns them."""
    variables = {"input": {"agentId": agent_id, "name": name, "sessionId": session_id}}
    result = await execute(server, token, operation("CreateSession"), variables)
    return dict(result["createSession"]["session"])


async def errors_of(call: Awaitable[Any]) -> list[dict[str, Any]]:
    """The GraphQL errors a gql call fails with (the call must fail)."""
    try:
        result = await call
    except TransportQueryError as exc:
        assert exc.errors, f"no errors in {exc!r}"
        return [dict(error) for error in exc.errors]
    raise AssertionError(f"expected GraphQL errors, got data {result!r}")


def codes(errors: list[dict[str, Any]]) -> list[str | None]:
    return [(error.get("extensions") or {}).get("code") for error in errors]


def masked(errors: list[dict[str, Any]], value: str) -> str:
    """Errors as JSON with one id replaced by a placeholder, to compare two errors apart from the id."""
    return json.dumps(errors, sort_keys=True).replace(json.dumps(value)[1:-1], "<ID>")


async def session_snapshot(server: RunningServer, token: str, session_id: str) -> dict[str, Any] | None:
    """Everything a user can read of one session: fields, all messages, all runs."""
    result = await execute(server, token, SESSION_SNAPSHOT, {"id": session_id})
    return result["session"]


def said(session: dict[str, Any]) -> list[tuple[str, str]]:
    """The conversation of a session as its messages read, (role, content) each, system messages left out."""
    return [(m["role"], m["content"]) for m in session["messages"]["nodes"] if m["role"] != "SYSTEM"]


async def user_snapshot(server: RunningServer, token: str) -> dict[str, Any]:
    """Everything a user can read of all their sessions."""
    return dict(await execute(server, token, SNAPSHOT))


def when(value: str) -> datetime:
    return datetime.fromisoformat(value)


def typenames(events: list[dict[str, Any]]) -> list[str]:
    return [event["__typename"] for event in events]


def assert_event_invariants(events: list[dict[str, Any]]) -> None:
    """One RunStarted first, one terminal event last, indexes 0, 1, 2, ... and one run and session throughout."""
    kinds = typenames(events)
    terminal = {"RunCompleted", "RunFailed", "RunCancelled"}
    assert kinds[0] == "RunStarted"
    assert kinds.count("RunStarted") == 1
    assert kinds[-1] in terminal
    assert sum(kind in terminal for kind in kinds) == 1
    assert [event["index"] for event in events] == list(range(len(events)))
    assert len({event["runId"] for event in events}) == 1
    assert len({event["sessionId"] for event in events}) == 1


class WebSocketServer(Protocol):
    """A server in a thread (RunningServer) or a served process (ServedProcess)."""

    @property
    def ws_url(self) -> str: ...


def connection_init(token: str, auth_key: str = "Authorization") -> str:
    """The connection_init frame of both websocket protocols, with the token as a client sends it."""
    return json.dumps({"type": "connection_init", "payload": {auth_key: f"Bearer {token}"}})


@asynccontextmanager
async def acknowledged_ws(
    server: WebSocketServer,
    token: str,
    subprotocol: str = TRANSPORT_WS,
    auth_key: str = "Authorization",
    **connect_options: Any,
) -> AsyncIterator[ClientConnection]:
    """A raw websocket connection after the handshake: connection_init with the token, connection_ack back.
    graphql-transport-ws unless `subprotocol` is the legacy graphql-ws; `connect_options` go to `connect`."""
    options = {"open_timeout": 10, "close_timeout": 2, **connect_options}
    async with connect(server.ws_url, subprotocols=[Subprotocol(subprotocol)], **options) as ws:
        await ws.send(connection_init(token, auth_key))
        ack = json.loads(await asyncio.wait_for(ws.recv(), timeout=10))
        assert ack["type"] == "connection_ack", ack
        yield ws


async def subscribe_run(ws: ClientConnection, operation_id: str, variables: dict[str, Any]) -> None:
    """Send a runAgent subscribe message on a raw graphql-transport-ws connection."""
    message = {"id": operation_id, "type": "subscribe", "payload": {"query": RUN_AGENT, "variables": variables}}
    await ws.send(json.dumps(message))


async def receive(ws: ClientConnection) -> dict[str, Any]:
    """The next protocol message (not a ping); answers pings on the way."""
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), timeout=20))
        if message.get("type") == "ping":
            await ws.send(json.dumps({"type": "pong"}))
            continue
        return dict(message)


async def poll(check: Any, attempts: int = 100, interval: float = 0.1) -> Any:
    """Call an async `check` until it returns something truthy, a bounded number of times; the last result."""
    result = None
    for _ in range(attempts):
        result = await check()
        if result:
            return result
        await asyncio.sleep(interval)
    return result

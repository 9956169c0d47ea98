"""Property-based: valid operations generated from schema.graphql never break the server.

hypothesis-graphql writes queries and mutations that are valid for the schema; each is sent
over HTTP with a valid token to the real server. The server must answer 200 (413 or 400 only
for its request limits), stay alive, and give every error a code that is not
INTERNAL_SERVER_ERROR. The examples are derandomized, so a run is reproducible; their number
is AGNO_GRAPHQL_FUZZ_EXAMPLES (default 60 per backend; `make fuzz` runs 2000).
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import graphql
import httpx
import pytest
import pytest_asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_graphql import from_schema

from tests.client import bearer, execute, run_agent
from tests.conftest import RunningServer, make_token

SCHEMA_SDL = (Path(__file__).resolve().parent.parent / "schema.graphql").read_text()
EXAMPLES = int(os.environ.get("AGNO_GRAPHQL_FUZZ_EXAMPLES", "60"))

FUZZ_USER = "fuzz-user"
EMPTY_SESSION, CHAT_SESSION, TOOL_SESSION = "fuzz-empty", "fuzz-chat", "fuzz-tools"
KNOWN_IDS = ("assistant", "calculator", EMPTY_SESSION, CHAT_SESSION, TOOL_SESSION, FUZZ_USER)

# Codes a valid operation may meet: bad arguments (ids, cursors, sizes), missing things, and the request limits.
EXPECTED_CODES = {"BAD_USER_INPUT", "NOT_FOUND", "GRAPHQL_VALIDATION_FAILED", "GRAPHQL_PARSE_FAILED"}
LIMIT_STATUSES = {400, 413}


def cursor(*values: Any) -> str:
    """A cursor shaped like the server's (base64 JSON), so generated ones get past decoding."""
    raw = json.dumps(list(values), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


CURSORS = (
    cursor("session", 0, CHAT_SESSION),
    cursor("session", 2**31, ""),
    cursor("session", 10**20, "x"),
    cursor("session", -(10**20), "x"),
    cursor("session", 2**63 - 1, "x"),
    cursor("session", 1.5, "x"),
    cursor("message", 0, 1),
    cursor("message", 1, 0),
    cursor("message", 2**63, 2**63),
    cursor("message", 2**63 - 1, -(2**63)),
    cursor("message", -1, -(10**30)),
    cursor("run", 0),
    cursor("run", 1),
    cursor("run", 10**40),
    cursor("run", -(2**63)),
    cursor("run", None),
    cursor("other", 1),
    "not a cursor",
    "",
    "=" * 4,
    "A" * 600,
)


def _string(value: str) -> graphql.StringValueNode:
    return graphql.StringValueNode(value=value)


def _int(value: int) -> graphql.IntValueNode:
    return graphql.IntValueNode(value=str(value))


def mostly(usual: st.SearchStrategy[Any], other: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """`usual` three times in four, so operations often get past argument checks and reach data."""
    return st.integers(min_value=0, max_value=3).flatmap(lambda n: other if n == 0 else usual)


# IDs that exist (agents, the seeded sessions), or else anything.
ID_VALUES: st.SearchStrategy[graphql.ValueNode] = mostly(
    st.sampled_from(KNOWN_IDS).map(_string),
    st.one_of(st.text().map(_string), st.integers(min_value=-(2**31), max_value=2**31 - 1).map(_int)),
)
# Page sizes within the limits, or else any 32-bit Int.
INT_VALUES: st.SearchStrategy[graphql.ValueNode] = mostly(
    st.integers(min_value=0, max_value=5).map(_int),
    st.integers(min_value=-(2**31), max_value=2**31 - 1).map(_int),
)
# Strings are names, messages and cursors: cursors in the server's shape, or else any text.
STRING_VALUES: st.SearchStrategy[graphql.ValueNode] = mostly(
    st.sampled_from(CURSORS).map(_string),
    st.text().map(_string),
)
OPERATIONS = from_schema(SCHEMA_SDL, custom_scalars={"ID": ID_VALUES, "Int": INT_VALUES, "String": STRING_VALUES})


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def fuzz_token(server: RunningServer) -> str:
    """The fuzz user's token, with sessions of known ids: empty, a chat, and a tool run."""
    token = make_token(FUZZ_USER)
    delete = "mutation($id: ID!) { deleteSession(input: {sessionId: $id}) { deletedSessionId } }"
    create = "mutation($input: CreateSessionInput!) { createSession(input: $input) { session { id } } }"
    mine = await execute(server, token, "{ sessions(first: 100) { nodes { id } } }")
    for node in mine["sessions"]["nodes"]:
        await execute(server, token, delete, {"id": node["id"]})
    for session_id, agent_id in (
        (EMPTY_SESSION, "assistant"),
        (CHAT_SESSION, "assistant"),
        (TOOL_SESSION, "calculator"),
    ):
        await execute(server, token, create, {"input": {"agentId": agent_id, "sessionId": session_id}})
    await run_agent(server, token, "assistant", "hello there", CHAT_SESSION)
    await run_agent(server, token, "assistant", "and once more", CHAT_SESSION)
    await run_agent(server, token, "calculator", "What is 12 * 7?", TOOL_SESSION)
    return token


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as client:
        yield client


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
@given(document=OPERATIONS)
def test_generated_operations_never_fail_internally(
    server: RunningServer, fuzz_token: str, http: httpx.Client, document: str
) -> None:
    response = http.post(server.http_url, json={"query": document}, headers=bearer(fuzz_token))
    alive = http.get(f"{server.base_url}/healthz")
    assert alive.status_code == 200, "the server stopped answering after this operation"
    body = response.json()
    errors = body.get("errors") or []
    codes = [(error.get("extensions") or {}).get("code") for error in errors]
    if response.status_code in LIMIT_STATUSES:
        assert errors, f"HTTP {response.status_code} without errors: {body}"
        assert set(codes) <= {"GRAPHQL_VALIDATION_FAILED", "GRAPHQL_PARSE_FAILED", "PAYLOAD_TOO_LARGE"}, body
        return
    assert response.status_code == 200, body
    assert "INTERNAL_SERVER_ERROR" not in codes, body
    assert None not in codes, f"an error without a code: {body}"
    assert set(codes) <= EXPECTED_CODES, body
    if not errors:
        assert body.get("data") is not None, body

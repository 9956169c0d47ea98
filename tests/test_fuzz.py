"""Property-based: valid operations generated from schema.graphql never break the server, nor do
generated websocket messages or the claims of correctly signed tokens.

hypothesis-graphql writes queries and mutations that are valid for the schema; each is sent
over HTTP with a valid token to the real server, whose database holds sessions with runs and
tool calls for the generated ids to find. The server must answer 200 (413 or 400 only for its
request limits), stay alive, and give every error a code that is not INTERNAL_SERVER_ERROR.
The examples are derandomized, so a run is reproducible; their number per test and backend is
AGNO_GRAPHQL_FUZZ_EXAMPLES (default 60; `make fuzz` runs 2000). AGNO_GRAPHQL_FUZZ_SEED=N draws other
examples, reproducibly for the same N, for long runs that look beyond the derandomized ones.
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
from hypothesis import seed as fixed_seed
from hypothesis import strategies as st
from hypothesis_graphql import mutations, queries
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect
from websockets.typing import Subprotocol

from tests.auth_support import hs256_token_with_raw_key
from tests.client import bearer, post, run_agent
from tests.conftest import TEST_SECRET, RunningServer, make_token
from tests.matrix_support import connection_init, create_session

# graphql-core cancels the sibling fields of one whose error nulls their parent; coroutines it had built for them
# but not started are reported when collected. That is its bookkeeping, not the server's.
pytestmark = pytest.mark.filterwarnings(
    r"ignore:coroutine '(Executor|GraphQLCoreConverter)\..*' was never awaited:RuntimeWarning"
)

SCHEMA_SDL = (Path(__file__).resolve().parent.parent / "schema.graphql").read_text()
EXAMPLES = int(os.environ.get("AGNO_GRAPHQL_FUZZ_EXAMPLES", "60"))
SEED = os.environ.get("AGNO_GRAPHQL_FUZZ_SEED", "")

AGENT_IDS = ("assistant", "calculator")
READER, WRITER = "fuzz-reader", "fuzz-writer"
EMPTY, CHAT, TOOLS = "empty", "chat", "tools"

# Codes a valid operation may meet: bad arguments (ids, cursors, sizes), missing things, and the request limits
# (the node limit answers 200: its count needs the variables, so it comes after validation).
EXPECTED_CODES = {
    "BAD_USER_INPUT",
    "NOT_FOUND",
    "GRAPHQL_VALIDATION_FAILED",
    "GRAPHQL_PARSE_FAILED",
    "QUERY_TOO_COMPLEX",
}
# Statuses and codes only the request limits (depth, aliases, tokens, body size) may give.
LIMIT_STATUSES = {400, 413}
LIMIT_CODES = {"GRAPHQL_VALIDATION_FAILED", "GRAPHQL_PARSE_FAILED", "PAYLOAD_TOO_LARGE"}


def cursor(*values: Any) -> str:
    """A cursor shaped like the server's (base64 JSON), so generated ones get past decoding."""
    raw = json.dumps(list(values), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


# Cursors of the server's lists that may exist (no list has a key below zero, so 0 pages from the start) ...
GOOD_CURSORS = (
    cursor("session", 0, f"{READER}-{CHAT}"),
    cursor("session", 2**31, ""),
    cursor("message", 0, 1),
    cursor("message", 1, 0),
    cursor("run", 0),
    cursor("run", 1),
)
# ... and edge cases: past or at the bounds of 64-bit keys, wrong types, another kind, not base64 JSON, too long.
BAD_CURSORS = (
    cursor("session", 10**20, "x"),
    cursor("session", -(10**20), "x"),
    cursor("session", 2**63 - 1, "x"),
    cursor("session", 1.5, "x"),
    cursor("message", 2**63, 2**63),
    cursor("message", 2**63 - 1, -(2**63)),
    cursor("message", -1, -(10**30)),
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
    """Mostly `usual`, so operations often get past argument checks and reach data; sometimes `other`."""
    return st.integers(min_value=0, max_value=3).flatmap(lambda n: other if n == 3 else usual)


def session_id(user: str, kind: str) -> str:
    return f"{user}-{kind}"


def ids(user: str) -> st.SearchStrategy[graphql.ValueNode]:
    """IDs that exist (the agents, the user's seeded sessions, the user), or else anything."""
    known = (*AGENT_IDS, *(session_id(user, kind) for kind in (EMPTY, CHAT, TOOLS)), user)
    return mostly(
        st.sampled_from(known).map(_string),
        st.one_of(st.text().map(_string), st.integers(min_value=-(2**31), max_value=2**31 - 1).map(_int)),
    )


# Page sizes within the limits, or else any 32-bit Int.
INT_VALUES: st.SearchStrategy[graphql.ValueNode] = mostly(
    st.integers(min_value=0, max_value=5).map(_int),
    st.integers(min_value=-(2**31), max_value=2**31 - 1).map(_int),
)
# Strings are names, messages and cursors: cursors that may exist, or else broken cursors or any text.
STRING_VALUES: st.SearchStrategy[graphql.ValueNode] = mostly(
    st.sampled_from(GOOD_CURSORS).map(_string),
    st.one_of(st.sampled_from(BAD_CURSORS).map(_string), st.text().map(_string)),
)
# An Upload is a file of a multipart request; written into a JSON document it is any literal, which must be refused.
UPLOAD_VALUES: st.SearchStrategy[graphql.ValueNode] = st.one_of(
    st.text().map(_string), st.integers(min_value=-(2**31), max_value=2**31 - 1).map(_int)
)
# Queries and mutations run as different users, so mutations never delete what the queries read.
SCALARS = {"Int": INT_VALUES, "String": STRING_VALUES, "Upload": UPLOAD_VALUES}
QUERIES = queries(SCHEMA_SDL, custom_scalars={"ID": ids(READER), **SCALARS})
MUTATIONS = mutations(SCHEMA_SDL, custom_scalars={"ID": ids(WRITER), **SCALARS})


async def seed(server: RunningServer, user: str) -> str:
    """The user's token, with sessions of known ids: an empty one, a chat, and one with a tool run."""
    token = make_token(user)
    delete = "mutation($id: ID!) { deleteSession(input: {sessionId: $id}) { deletedSessionId } }"
    for kind, agent_id in ((EMPTY, "assistant"), (CHAT, "assistant"), (TOOLS, "calculator")):
        await post(server, token, delete, {"id": session_id(user, kind)})  # left by an earlier run, if any
        await create_session(server, token, agent_id, session_id=session_id(user, kind))
    await run_agent(server, token, "assistant", "hello there", session_id(user, CHAT))
    await run_agent(server, token, "assistant", "and once more", session_id(user, CHAT))
    await run_agent(server, token, "calculator", "What is 12 * 7?", session_id(user, TOOLS))
    return token


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def reader_token(server: RunningServer) -> str:
    return await seed(server, READER)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def writer_token(server: RunningServer) -> str:
    return await seed(server, WRITER)


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as client:
        yield client


FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=not SEED,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)


def check_response(server: RunningServer, http: httpx.Client, token: str, document: str) -> None:
    """Send one operation; the server answers it properly, with a code on every error, and stays up."""
    response = http.post(server.http_url, json={"query": document}, headers=bearer(token))
    alive = http.get(f"{server.base_url}/healthz")
    assert alive.status_code == 200, "the server stopped answering after this operation"
    body = response.json()
    errors = body.get("errors") or []
    codes = [(error.get("extensions") or {}).get("code") for error in errors]
    if response.status_code in LIMIT_STATUSES:
        assert errors, f"HTTP {response.status_code} without errors: {body}"
        assert set(codes) <= LIMIT_CODES, body
        return
    assert response.status_code == 200, body
    assert "INTERNAL_SERVER_ERROR" not in codes, body
    assert None not in codes, f"an error without a code: {body}"
    assert set(codes) <= EXPECTED_CODES, body
    if not errors:
        assert body.get("data") is not None, body


def seeded(test: Any) -> Any:
    """The test with AGNO_GRAPHQL_FUZZ_SEED's examples, when it is set."""
    return fixed_seed(int(SEED))(test) if SEED else test


@seeded
@FUZZ_SETTINGS
@given(document=QUERIES)
def test_generated_queries_never_fail_internally(
    server: RunningServer, reader_token: str, http: httpx.Client, document: str
) -> None:
    check_response(server, http, reader_token, document)


@seeded
@FUZZ_SETTINGS
@given(document=MUTATIONS)
def test_generated_mutations_never_fail_internally(
    server: RunningServer, writer_token: str, http: httpx.Client, document: str
) -> None:
    check_response(server, http, writer_token, document)


# --- websocket messages: whatever a client sends, the socket is answered or closed with a code ---

JSON_VALUES: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=8,
)
SOCKET_QUERIES = (
    "{ viewer { userId } }",
    "subscription { sessionEvents { kind } }",
    'subscription { runEvents(runId: "no-such-run") { index } }',
    "{ nope }",
    "{",
)
SUBSCRIBE_PAYLOADS = st.fixed_dictionaries(
    {},
    optional={
        "query": st.sampled_from(SOCKET_QUERIES) | JSON_VALUES,
        "variables": JSON_VALUES,
        "operationName": JSON_VALUES,
        "extensions": JSON_VALUES,
    },
)
MESSAGE_TYPES = ("connection_init", "ping", "pong", "subscribe", "complete", "next", "error", "start", "bogus")
SOCKET_MESSAGES = st.one_of(
    JSON_VALUES,
    st.fixed_dictionaries(
        {"type": st.sampled_from(MESSAGE_TYPES) | JSON_VALUES},
        optional={"id": st.text(max_size=6) | JSON_VALUES, "payload": SUBSCRIBE_PAYLOADS | JSON_VALUES},
    ),
)
# Codes a message may close the socket with: bad message, and a second connection_init.
SOCKET_CLOSE_CODES = {4400, 4429}


def check_socket_message(server: RunningServer, token: str, message: Any) -> None:
    """Send one message on an acknowledged socket, then a ping: a pong comes back, or a close with a code."""
    with connect(server.ws_url, subprotocols=[Subprotocol("graphql-transport-ws")], open_timeout=10) as socket:
        socket.send(connection_init(token))
        assert json.loads(socket.recv(timeout=10))["type"] == "connection_ack"
        try:
            socket.send(json.dumps(message))
            socket.send(json.dumps({"type": "ping"}))
            for _ in range(20):
                frame = str(socket.recv(timeout=10))
                assert "INTERNAL_SERVER_ERROR" not in frame, frame
                if json.loads(frame).get("type") == "pong":
                    return
            raise AssertionError("no pong after 20 frames")
        except ConnectionClosed as closed:
            assert closed.rcvd is not None, "the server dropped the socket without a close frame"
            assert closed.rcvd.code in SOCKET_CLOSE_CODES, closed.rcvd


@seeded
@FUZZ_SETTINGS
@given(message=SOCKET_MESSAGES)
def test_generated_websocket_messages_never_drop_the_socket(server: RunningServer, message: Any) -> None:
    check_socket_message(server, make_token("fuzz-socket"), message)


# --- tokens: whatever claims a correctly signed token carries, it is served or refused, never an internal error ---

# Times at the edges (past what a float or 64 bits hold) as well as anywhere.
EDGE_TIMES = st.sampled_from([10**400, -(10**400), 2**1024, 1e308, 2**63, 2**64, 2**31, -1, 0, True])
TIMES = EDGE_TIMES | st.integers() | st.floats(allow_nan=True) | JSON_VALUES
# Mostly a good subject and a plausible expiry, so that most tokens get as far as their expiry being used.
CLAIMS = st.fixed_dictionaries(
    {
        "sub": mostly(st.just("fuzz-token-user"), st.text(max_size=140) | JSON_VALUES),
        "exp": mostly(EDGE_TIMES | st.integers(min_value=2**31, max_value=2**40), TIMES),
    },
    optional={"nbf": TIMES, "iat": TIMES, "aud": st.text(max_size=10) | JSON_VALUES, "iss": JSON_VALUES},
)
TOKEN_HEADERS = st.fixed_dictionaries({}, optional={"kid": JSON_VALUES, "typ": JSON_VALUES, "crit": JSON_VALUES})


def check_token(server: RunningServer, http: httpx.Client, token: str) -> None:
    """Over HTTP: the viewer, or UNAUTHENTICATED. Over a websocket: the ack, or a close with 4403."""
    body = http.post(server.http_url, json={"query": "{ viewer { userId } }"}, headers=bearer(token)).json()
    codes = [(error.get("extensions") or {}).get("code") for error in body.get("errors") or []]
    assert codes in ([], ["UNAUTHENTICATED"]), body
    with connect(server.ws_url, subprotocols=[Subprotocol("graphql-transport-ws")], open_timeout=10) as socket:
        socket.send(connection_init(token))
        try:
            answer = json.loads(socket.recv(timeout=10))
        except ConnectionClosed as closed:
            assert closed.rcvd is not None and closed.rcvd.code == 4403, closed.rcvd
            assert codes == ["UNAUTHENTICATED"], "refused on the socket, served over HTTP"
            return
    assert answer["type"] == "connection_ack", answer
    assert codes == [] and answer["payload"]["userId"] == body["data"]["viewer"]["userId"], (answer, body)


@seeded
@FUZZ_SETTINGS
@given(claims=CLAIMS, headers=TOKEN_HEADERS)
def test_generated_token_claims_are_served_or_refused(
    server: RunningServer, http: httpx.Client, claims: dict[str, Any], headers: dict[str, Any]
) -> None:
    check_token(server, http, hs256_token_with_raw_key(claims, TEST_SECRET.encode(), headers))

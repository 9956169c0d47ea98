"""Hostile tokens, on HTTP and websockets alike, and tokens that stop being good while a socket is open.

The server here checks audience and issuer, allows no leeway, and refuses the users listed in
AGNO_GRAPHQL_DENIED_USERS_FILE (re-read when it changes). A socket is closed with 4403 when its token
expires or its user is denied; the runs it started go on and can be followed with a fresh token.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pytest
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from agno_graphql.auth import DeniedUsersFileError, TokenVerifier
from tests.auth_support import (
    VIEWER,
    claims_for,
    error_codes,
    graphql_ws,
    receive,
    unsigned_token,
    viewer_request,
)
from tests.client import RUN_AGENT, bearer
from tests.conftest import TEST_SECRET, RunningServer, make_token, serving_with
from tests.conftest import server_settings as settings_with
from tests.matrix_support import acknowledged_ws, connection_init, poll, subscribe_run
from tests.run_support import LONG_MESSAGE, SESSION_EVENTS, content_of, follow, run_input
from tests.test_http_streaming import open_stream, stream_results

AUDIENCE = "agno-graphql-hostile"
ISSUER = "https://issuer.hostile.test/"
OTHER_SECRET = "another-secret-entirely-0123456789-abcdef"
ALWAYS_DENIED = "denied-forever"
DENIED_FILE_HEADER = f"# users locked out by the operator\n\n   {ALWAYS_DENIED}   \n#not-a-user\n"
CLOSE_WAIT_SECONDS = 20
MEDIUM_MESSAGE = " ".join(f"word{i}" for i in range(25))  # a run of a few deny-list checks


@dataclass
class TokenServer:
    running: RunningServer
    denied_file: Path

    def deny(self, *user_ids: str) -> None:
        self.denied_file.write_text(DENIED_FILE_HEADER + "".join(f"{user}\n" for user in user_ids))


@pytest.fixture(scope="module")
def strict(new_database_url: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[TokenServer]:
    denied_file = tmp_path_factory.mktemp("denied") / "denied-users.txt"
    denied_file.write_text(DENIED_FILE_HEADER)
    with serving_with(
        new_database_url,
        tmp_path_factory,
        "hostile_tokens",
        jwt_audience=AUDIENCE,
        jwt_issuer=ISSUER,
        jwt_leeway_seconds=0,
        denied_users_file=str(denied_file),
        offline_delay_ms=60,
    ) as running:
        yield TokenServer(running, denied_file)


def token_for(user_id: str, **claims: Any) -> str:
    """A good token for the strict server, unless `claims` spoil it."""
    return make_token(user_id, **{"aud": AUDIENCE, "iss": ISSUER, **claims})


BAD_TOKENS: dict[str, Callable[[str], str]] = {
    "expired": lambda user: token_for(user, exp=int(time.time()) - 60),
    "not yet valid": lambda user: token_for(user, nbf=int(time.time()) + 600),
    "wrong signature": lambda user: token_for(user, secret=OTHER_SECRET),
    "alg none": lambda user: unsigned_token(claims_for(user, aud=AUDIENCE, iss=ISSUER)),
    "wrong audience": lambda user: token_for(user, aud="another-api"),
    "wrong issuer": lambda user: token_for(user, iss="https://elsewhere.test/"),
    "no audience": lambda user: jwt.encode(claims_for(user, iss=ISSUER), TEST_SECRET, algorithm="HS256"),
    "denied user": lambda user: token_for(ALWAYS_DENIED),
    "subject with a control character": lambda user: token_for(f"{user}\x00admin"),
    "exp a string": lambda user: token_for(user, exp="tomorrow"),
}


async def refused_over_http(server: RunningServer, token: str) -> list[str]:
    body = (await viewer_request(server, bearer(token), VIEWER)).json()
    assert body.get("data") is None, body
    return error_codes(body)


async def close_code_of_init(server: RunningServer, token: str) -> int:
    async with graphql_ws(server) as socket:
        await socket.send(connection_init(token))
        with pytest.raises(ConnectionClosed) as closed:
            await receive(socket)
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code


async def frames_until_closed(socket: ClientConnection) -> tuple[list[dict[str, Any]], int, str]:
    """Every frame the server sends until it closes the socket; then its close code and reason."""
    frames: list[dict[str, Any]] = []
    with pytest.raises(ConnectionClosed) as closed:
        async with asyncio.timeout(CLOSE_WAIT_SECONDS):
            while True:
                frames.append(json.loads(await socket.recv()))
    assert closed.value.rcvd is not None, "dropped without a close frame"
    return frames, closed.value.rcvd.code, closed.value.rcvd.reason


async def test_a_good_token_is_served(strict: TokenServer, user_id: str) -> None:
    response = await viewer_request(strict.running, bearer(token_for(user_id)), VIEWER)
    assert response.json() == {"data": {"viewer": {"userId": user_id}}}


@pytest.mark.parametrize("case", list(BAD_TOKENS))
async def test_a_bad_token_is_refused_over_http(strict: TokenServer, user_id: str, case: str) -> None:
    assert await refused_over_http(strict.running, BAD_TOKENS[case](user_id)) == ["UNAUTHENTICATED"]


@pytest.mark.parametrize("case", list(BAD_TOKENS))
async def test_a_bad_token_is_refused_over_websockets(strict: TokenServer, user_id: str, case: str) -> None:
    assert await close_code_of_init(strict.running, BAD_TOKENS[case](user_id)) == 4403


async def test_a_token_whose_exp_no_float_can_hold_is_served(strict: TokenServer, user_id: str) -> None:
    """Was INTERNAL_SERVER_ERROR (HTTP) and a dropped socket: the expiry did not fit a float."""
    token = token_for(user_id, exp=10**400)
    response = await viewer_request(strict.running, bearer(token), VIEWER)
    assert response.json() == {"data": {"viewer": {"userId": user_id}}}
    async with acknowledged_ws(strict.running, token) as socket:
        await socket.send(json.dumps({"type": "ping"}))
        async with asyncio.timeout(CLOSE_WAIT_SECONDS):
            assert json.loads(await socket.recv()) == {"type": "pong"}


async def test_a_socket_is_closed_when_its_token_expires_and_its_run_goes_on(strict: TokenServer, user_id: str) -> None:
    server = strict.running
    short_lived = token_for(user_id, exp=int(time.time()) + 3)
    async with acknowledged_ws(server, short_lived) as socket:
        await subscribe_run(socket, "1", run_input(None))
        frames, code, reason = await frames_until_closed(socket)
    assert (code, reason) == (4403, "Token expired")
    seen = [frame["payload"]["data"]["runAgent"] for frame in frames if frame["type"] == "next"]
    assert seen and seen[0]["__typename"] == "RunStarted"
    assert seen[-1]["__typename"] == "RunContentDelta", "the run was over before the token expired"

    rest = await follow(server, token_for(user_id), seen[0]["runId"], after_index=seen[-1]["index"])

    events = seen + rest
    assert [event["index"] for event in events] == list(range(len(events)))
    assert events[-1]["__typename"] == "RunCompleted"
    assert events[-1]["content"] == content_of(events) == f"You said: {LONG_MESSAGE}"


async def streamed_results(
    server: RunningServer, token: str, protocol: str, document: str, variables: dict[str, Any] | None
) -> list[Any]:
    """Every result of an SSE or multipart subscription, to its end, which comes within CLOSE_WAIT_SECONDS."""
    async with asyncio.timeout(CLOSE_WAIT_SECONDS):
        return await stream_results(open_stream(server, token, protocol, document, variables))


async def test_a_run_streamed_over_sse_ends_unauthenticated_when_the_token_expires_and_goes_on(
    strict: TokenServer, user_id: str
) -> None:
    server = strict.running
    results = await streamed_results(
        server, token_for(user_id, exp=int(time.time()) + 3), "sse", RUN_AGENT, run_input(None)
    )
    seen = [result["data"]["runAgent"] for result in results[:-1]]
    assert seen and seen[0]["__typename"] == "RunStarted" and seen[-1]["__typename"] == "RunContentDelta"
    assert [error["extensions"]["code"] for error in results[-1]["errors"]] == ["UNAUTHENTICATED"]
    assert results[-1]["errors"][0]["message"] == "Token expired."

    rest = await follow(server, token_for(user_id), seen[0]["runId"], after_index=seen[-1]["index"])
    assert rest[-1]["__typename"] == "RunCompleted"
    assert rest[-1]["content"] == content_of(seen + rest) == f"You said: {LONG_MESSAGE}"


async def test_an_idle_multipart_subscription_ends_unauthenticated_when_the_token_expires(
    strict: TokenServer, user_id: str
) -> None:
    token = token_for(user_id, exp=int(time.time()) + 2)
    results = await streamed_results(strict.running, token, "multipart", SESSION_EVENTS, None)
    assert len(results) == 1
    assert [error["extensions"]["code"] for error in results[0]["errors"]] == ["UNAUTHENTICATED"]


async def test_a_denied_user_is_refused_and_their_open_socket_closed_until_let_back_in(
    strict: TokenServer, user_id: str
) -> None:
    server, token = strict.running, token_for(user_id)
    async with acknowledged_ws(server, token) as socket:
        await socket.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": SESSION_EVENTS}}))
        strict.deny(user_id)
        _frames, code, reason = await frames_until_closed(socket)
    assert (code, reason) == (4403, "This user is denied access")
    assert await refused_over_http(server, token) == ["UNAUTHENTICATED"]
    assert await close_code_of_init(server, token) == 4403

    strict.deny()

    async def served() -> bool:
        response = await viewer_request(server, bearer(token), VIEWER)
        return bool(response.json().get("data"))

    assert await poll(served, attempts=50, interval=0.1)
    assert await refused_over_http(server, token_for(ALWAYS_DENIED)) == ["UNAUTHENTICATED"]


async def test_a_socket_of_another_user_stays_open_when_someone_is_denied(strict: TokenServer, user_id: str) -> None:
    other = f"{user_id}-other"
    async with acknowledged_ws(strict.running, token_for(user_id)) as socket:
        strict.deny(other)
        try:
            await subscribe_run(socket, "1", run_input(None, message=MEDIUM_MESSAGE))
            async with asyncio.timeout(CLOSE_WAIT_SECONDS):
                while (frame := json.loads(await socket.recv()))["type"] == "next":
                    last = frame["payload"]["data"]["runAgent"]
        finally:
            strict.deny()
    assert frame == {"id": "1", "type": "complete"}
    assert last["content"] == f"You said: {MEDIUM_MESSAGE}"


def test_a_missing_denied_users_file_is_a_startup_error(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-file.txt"
    settings = settings_with("sqlite://", tmp_path, denied_users_file=str(missing))
    with pytest.raises(DeniedUsersFileError) as refused:
        TokenVerifier(settings, TEST_SECRET)
    assert "AGNO_GRAPHQL_DENIED_USERS_FILE" in str(refused.value)
    assert str(missing) in str(refused.value)

"""Hostile websocket clients: each protocol abuse closes that socket with its code, and the server serves on.

graphql-transport-ws close codes: 4400 bad message, 4401 subscribe before ack, 4408 no connection_init in time,
4409 duplicate subscription id, 4429 second connection_init, 1009 a frame over the limit. The legacy graphql-ws
socket gets the same 4400 and 4408. (More subscriptions than allowed: test_limits.)
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from tests.client import LEGACY_WS, RUN_AGENT, TRANSPORT_WS, execute
from tests.conftest import RunningServer, make_token, serving_with
from tests.matrix_support import acknowledged_ws, connection_init
from tests.process_support import cli_env, serving_process
from tests.run_support import LONG_MESSAGE

WAIT_SECONDS = 20
INIT_TIMEOUT_SECONDS = 1.0
SMALL_FRAME_LIMIT = 8192
TEN_MEGABYTES = 10 * 1024 * 1024


@pytest.fixture(scope="module")
def strict(new_database_url: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """A server that waits one second for connection_init and takes frames of 8 KiB at most."""
    with serving_with(
        new_database_url,
        tmp_path_factory,
        "hostile_ws",
        connection_init_timeout_seconds=INIT_TIMEOUT_SECONDS,
        max_body_bytes=SMALL_FRAME_LIMIT,
        offline_delay_ms=30,
    ) as running:
        yield running


def subscribe(operation_id: str, message: str = LONG_MESSAGE, kind: str = "subscribe") -> str:
    variables = {"input": {"agentId": "assistant", "message": message}}
    return json.dumps({"id": operation_id, "type": kind, "payload": {"query": RUN_AGENT, "variables": variables}})


async def open_socket(url: str, subprotocol: str) -> ClientConnection:
    return await connect(url, subprotocols=[Subprotocol(subprotocol)], open_timeout=WAIT_SECONDS, max_size=None)


async def close_code(socket: ClientConnection) -> tuple[int, str]:
    """Read (answering nothing) until the server closes the socket: its close code and reason."""
    with pytest.raises(ConnectionClosed) as closed:
        async with asyncio.timeout(WAIT_SECONDS):
            while True:
                await socket.recv()
    received = closed.value.rcvd
    assert received is not None, "the server dropped the connection without a close frame"
    return received.code, received.reason


async def close_code_after_sending(socket: ClientConnection, frame: str) -> int:
    """Send a frame the server may close the socket on while it is still arriving; the close code."""
    try:
        await socket.send(frame)
    except ConnectionClosed as closed:
        assert closed.rcvd is not None, "the server dropped the connection without a close frame"
        return closed.rcvd.code
    return (await close_code(socket))[0]


async def assert_still_serving(server: RunningServer, user_id: str) -> None:
    """After the abuse: a new socket is acknowledged and runs, and HTTP answers."""
    async with acknowledged_ws(server, make_token(user_id)) as socket:
        await socket.send(subscribe("after", message="still there?"))
        frames: list[dict[str, Any]] = []
        async with asyncio.timeout(WAIT_SECONDS):
            while not frames or frames[-1]["type"] == "next":
                frames.append(json.loads(await socket.recv()))
    assert frames[-1] == {"id": "after", "type": "complete"}
    assert frames[-2]["payload"]["data"]["runAgent"]["content"] == "You said: still there?"
    assert await execute(server, make_token(user_id), "{ viewer { userId } }") == {"viewer": {"userId": user_id}}


@pytest.mark.parametrize("subprotocol", [TRANSPORT_WS, LEGACY_WS], ids=["transport-ws", "legacy-ws"])
async def test_a_socket_without_connection_init_is_closed_with_4408(
    strict: RunningServer, user_id: str, subprotocol: str
) -> None:
    async with await open_socket(strict.ws_url, subprotocol) as socket:
        code, reason = await close_code(socket)
    assert code == 4408
    assert "timeout" in reason.lower()
    await assert_still_serving(strict, user_id)


async def test_a_second_connection_init_closes_with_4429(server: RunningServer, user_id: str) -> None:
    async with acknowledged_ws(server, make_token(user_id)) as socket:
        await socket.send(connection_init(make_token(user_id)))
        assert (await close_code(socket))[0] == 4429


async def test_subscribe_before_the_ack_closes_with_4401(server: RunningServer) -> None:
    async with await open_socket(server.ws_url, TRANSPORT_WS) as socket:
        await socket.send(subscribe("1", message="sneaked in"))
        assert (await close_code(socket))[0] == 4401


async def test_a_duplicate_subscription_id_closes_with_4409(server: RunningServer, user_id: str) -> None:
    async with acknowledged_ws(server, make_token(user_id)) as socket:
        await socket.send(subscribe("same"))
        async with asyncio.timeout(WAIT_SECONDS):
            first = json.loads(await socket.recv())
        assert first["id"] == "same" and first["type"] == "next"
        await socket.send(subscribe("same"))
        code, reason = await close_code(socket)
    assert code == 4409
    assert "same" in reason


async def test_invalid_json_closes_with_4400(server: RunningServer, user_id: str) -> None:
    async with acknowledged_ws(server, make_token(user_id)) as socket:
        await socket.send('{"type": "subscribe", "id": ')
        code, reason = await close_code(socket)
    assert code == 4400
    assert "JSON" in reason
    await assert_still_serving(server, user_id)


async def test_an_unknown_message_type_closes_with_4400(server: RunningServer, user_id: str) -> None:
    async with acknowledged_ws(server, make_token(user_id)) as socket:
        await socket.send(json.dumps({"type": "hello", "id": "1"}))
        code, reason = await close_code(socket)
    assert code == 4400
    assert "hello" in reason


async def test_a_binary_frame_closes_with_4400(server: RunningServer, user_id: str) -> None:
    async with acknowledged_ws(server, make_token(user_id)) as socket:
        await socket.send(b'{"type": "ping"}')
        assert (await close_code(socket))[0] == 4400


# Strawberry crashed on each of these (the socket dropped without a close frame, or an INTERNAL_SERVER_ERROR).
MALFORMED = {
    "a list": "[1, 2]",
    "a string": '"subscribe"',
    "a number": "5",
    "null": "null",
    "a type that is not a string": '{"type": 5}',
    "an id that is a list": '{"id": [1], "type": "subscribe", "payload": {"query": "{ viewer { userId } }"}}',
    "an id that is a number": '{"id": 5, "type": "subscribe", "payload": {"query": "{ viewer { userId } }"}}',
    "an empty id": '{"id": "", "type": "subscribe", "payload": {"query": "{ viewer { userId } }"}}',
    "a payload that is a string": '{"id": "1", "type": "subscribe", "payload": "{ viewer { userId } }"}',
    "no payload": '{"id": "1", "type": "subscribe"}',
    "a query that is a number": '{"id": "1", "type": "subscribe", "payload": {"query": 5}}',
    "variables that are a list": '{"id": "1", "type": "subscribe", "payload": {"query": "{ viewer { userId } }", '
    '"variables": [1]}}',
    "an operationName that is a number": '{"id": "1", "type": "subscribe", "payload": {"query": "{ viewer { id } }", '
    '"operationName": 5}}',
    "a complete whose id is an object": '{"id": {"a": 1}, "type": "complete"}',
    "JSON nested too deeply": '{"type": "ping", "payload": ' + "[" * 100_000 + "]" * 100_000 + "}",
}


@pytest.mark.parametrize("case", list(MALFORMED))
async def test_a_malformed_message_closes_with_4400(server: RunningServer, user_id: str, case: str) -> None:
    async with acknowledged_ws(server, make_token(user_id)) as socket:
        await socket.send(MALFORMED[case])
        code, reason = await close_code(socket)
    assert code == 4400
    assert reason


LEGACY_MALFORMED = {
    "a list": "[1, 2]",
    "a start without an id": '{"type": "start", "payload": {"query": "subscription { sessionEvents { kind } }"}}',
    "a start whose payload is a string": '{"id": "1", "type": "start", "payload": "x"}',
    "a stop whose id is a list": '{"id": [1], "type": "stop"}',
}


@pytest.mark.parametrize("case", list(LEGACY_MALFORMED))
async def test_a_malformed_legacy_message_closes_with_4400(server: RunningServer, user_id: str, case: str) -> None:
    async with acknowledged_ws(server, make_token(user_id), LEGACY_WS) as socket:
        await socket.send(LEGACY_MALFORMED[case])
        assert (await close_code(socket))[0] == 4400


async def test_the_server_serves_on_after_every_malformed_message(server: RunningServer, user_id: str) -> None:
    for frame in [*MALFORMED.values(), "{nope"]:
        async with acknowledged_ws(server, make_token(user_id)) as socket:
            await socket.send(frame)
            assert (await close_code(socket))[0] == 4400, frame
    await assert_still_serving(server, user_id)


async def test_a_ten_megabyte_frame_closes_with_1009(server: RunningServer, user_id: str) -> None:
    async with acknowledged_ws(server, make_token(user_id)) as socket:
        assert await close_code_after_sending(socket, subscribe("big", message="x" * TEN_MEGABYTES)) == 1009
    await assert_still_serving(server, user_id)


async def test_a_frame_over_the_body_limit_closes_with_1009(strict: RunningServer, user_id: str) -> None:
    """The app applies AGNO_GRAPHQL_MAX_BODY_BYTES to frames itself, whatever the ASGI server's own limit."""
    async with acknowledged_ws(strict, make_token(user_id)) as socket:
        await socket.send(subscribe("big", message="x" * SMALL_FRAME_LIMIT))
        code, _reason = await close_code(socket)
    assert code == 1009
    async with acknowledged_ws(strict, make_token(user_id)) as socket:
        await socket.send(subscribe("small", message="x" * (SMALL_FRAME_LIMIT // 2)))
        async with asyncio.timeout(WAIT_SECONDS):
            first = json.loads(await socket.recv())
    assert first["type"] == "next" and first["payload"]["data"]["runAgent"]["__typename"] == "RunStarted"


async def test_the_served_command_refuses_a_ten_megabyte_frame_with_1009(
    backend: str, new_database_url: Callable[[str], str], tmp_path: Path, user_id: str
) -> None:
    if backend != "sqlite":
        pytest.skip("about the command's websocket settings, not the database")
    env = cli_env(tmp_path / "state", new_database_url("hostile_cli"), jwt_secret="cli-secret-for-hostile-frames-0123")
    token = make_token(user_id, secret="cli-secret-for-hostile-frames-0123")
    with serving_process(tmp_path / "serve", env) as served:
        async with acknowledged_ws(served, token) as socket:
            assert await close_code_after_sending(socket, subscribe("big", message="x" * TEN_MEGABYTES)) == 1009
        async with acknowledged_ws(served, token):
            pass  # the served command still acknowledges a new socket

"""Health and readiness: a database that is down is not a startup error, and coming back needs no restart."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from gql.transport.exceptions import TransportQueryError
from sqlalchemy.engine import make_url

from tests.auth_support import VIEWER, TcpProxy, error_codes
from tests.client import execute, post, run_agent
from tests.conftest import RunningServer, free_port, make_token, server_settings, start_server

SESSIONS = "query Mine { sessions(first: 5) { totalCount nodes { id } } }"
CREATE = "mutation Create($agentId: ID!) { createSession(input: {agentId: $agentId}) { session { id } } }"
RECOVERY_ATTEMPTS = 300  # x 0.1 s


async def _get(server: RunningServer, path: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
        return await client.get(path)


async def test_healthz_is_ok(server: RunningServer) -> None:
    response = await _get(server, "/healthz")
    assert response.status_code == 200


async def test_readyz_is_ok_when_database_is_up(server: RunningServer) -> None:
    response = await _get(server, "/readyz")
    assert response.status_code == 200


@dataclass
class DatabaseBehindProxy:
    """A server whose MariaDB URL points at a loopback port where nothing listens until `proxy.start()`."""

    server: RunningServer
    proxy: TcpProxy


@pytest.fixture
def database_down(
    backend: str, new_database_url: Callable[[str], str], tmp_path: Path
) -> Iterator[DatabaseBehindProxy]:
    if backend == "sqlite":
        pytest.skip("SQLite is a local file, not a server that can be down: the down-then-up scenario is MariaDB's")
    real_url = make_url(new_database_url("ready"))
    proxy = TcpProxy(free_port(), real_url.host or "127.0.0.1", real_url.port or 3306)
    proxied_url = real_url.set(host="127.0.0.1", port=proxy.listen_port).render_as_string(hide_password=False)
    running = start_server(server_settings(proxied_url, tmp_path / "state"))
    try:
        yield DatabaseBehindProxy(running, proxy)
    finally:
        running.stop()
        proxy.stop()


async def test_server_starts_and_stays_alive_while_database_is_down(database_down: DatabaseBehindProxy) -> None:
    assert (await _get(database_down.server, "/healthz")).status_code == 200


async def test_readyz_is_503_while_database_is_down(database_down: DatabaseBehindProxy) -> None:
    assert (await _get(database_down.server, "/readyz")).status_code == 503


async def test_query_gets_db_unavailable_while_database_is_down(
    database_down: DatabaseBehindProxy, user_id: str
) -> None:
    body = await post(database_down.server, make_token(user_id), SESSIONS)
    assert body.get("data") is None
    assert set(error_codes(body)) == {"DB_UNAVAILABLE"}, body


async def test_run_gets_db_unavailable_while_database_is_down(database_down: DatabaseBehindProxy, user_id: str) -> None:
    with pytest.raises(TransportQueryError) as failed:
        await run_agent(database_down.server, make_token(user_id), "assistant", "hello")
    errors = failed.value.errors or []
    assert [error["extensions"]["code"] for error in errors] == ["DB_UNAVAILABLE"]


async def test_authentication_works_while_database_is_down(database_down: DatabaseBehindProxy, user_id: str) -> None:
    assert await execute(database_down.server, make_token(user_id), VIEWER) == {"viewer": {"userId": user_id}}


async def test_server_recovers_without_restart_when_database_comes_up(
    database_down: DatabaseBehindProxy, user_id: str
) -> None:
    server, token = database_down.server, make_token(user_id)
    assert (await _get(server, "/readyz")).status_code == 503

    database_down.proxy.start()
    for _ in range(RECOVERY_ATTEMPTS):
        if (await _get(server, "/readyz")).status_code == 200:
            break
        await asyncio.sleep(0.1)
    else:
        pytest.fail("/readyz never became 200 after the database came up")

    created = await execute(server, token, CREATE, {"agentId": "assistant"})
    session_id = created["createSession"]["session"]["id"]
    listed = await execute(server, token, SESSIONS)
    assert listed["sessions"] == {"totalCount": 1, "nodes": [{"id": session_id}]}

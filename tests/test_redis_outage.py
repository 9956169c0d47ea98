"""Redis goes away and comes back: runs are refused with a clear code meanwhile, nothing stored is touched,
and the server recovers by itself, session events included."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.auth_support import TcpProxy
from tests.client import run_agent
from tests.conftest import RunningServer, free_port, make_token, server_settings, start_server
from tests.matrix_support import codes, create_session, errors_of, session_snapshot
from tests.run_support import SESSION_EVENTS, subscription

RECOVERY_ATTEMPTS = 300  # x 0.1 s


async def readiness(server: RunningServer) -> tuple[int, dict[str, str]]:
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.get(f"{server.base_url}/readyz")
    return response.status_code, response.json()


async def test_runs_are_refused_while_redis_is_down_and_work_again_once_it_is_back(
    new_database_url: Callable[[str], str], tmp_path: Path, user_id: str
) -> None:
    port = free_port()
    proxy = TcpProxy(port, "127.0.0.1", 6379)
    proxy.start()
    settings = server_settings(
        new_database_url("redis-outage"),
        tmp_path / "state",
        redis_url=f"redis://127.0.0.1:{port}/0",
        redis_prefix=f"agql-test-{uuid.uuid4().hex[:8]}",
    )
    server = start_server(settings)
    token = make_token(user_id)
    try:
        before = await run_agent(server, token, "assistant", "before")
        session_id = before[0]["sessionId"]
        stored_before = await session_snapshot(server, token, session_id)

        proxy.stop()
        down = await readiness(server)
        refused = codes(await errors_of(run_agent(server, token, "assistant", "during", session_id)))
        created = await create_session(server, token)
        during = await session_snapshot(server, token, session_id)

        proxy = TcpProxy(port, "127.0.0.1", 6379)
        proxy.start()
        for _ in range(RECOVERY_ATTEMPTS):
            if (await readiness(server))[0] == 200:
                break
            await asyncio.sleep(0.1)
        after = await run_agent(server, token, "assistant", "after", session_id)
        async with subscription(server, token, SESSION_EVENTS) as tab:
            await asyncio.sleep(0.3)
            await create_session(server, token)
            change = await asyncio.wait_for(tab.events("sessionEvents", stop_after=1), timeout=30)
    finally:
        server.stop()
        proxy.stop()

    assert down == (503, {"status": "not ready", "database": "ok", "redis": "unreachable"})
    assert refused == ["BROKER_UNAVAILABLE"]
    assert created["id"]  # sessions do not need Redis
    assert during == stored_before  # nothing stored was touched
    assert after[-1]["content"] == "You said: after"
    assert [e["kind"] for e in change] == ["CREATED"]

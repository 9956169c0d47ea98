"""Health and readiness with everything up. A database that is down at startup (not a startup error; /readyz
503 until it is back, with no restart) is tested on a private MariaDB in test_database_faults.py; Redis down
in test_redis_outage.py."""

from __future__ import annotations

import httpx

from tests.conftest import RunningServer


async def _get(server: RunningServer, path: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
        return await client.get(path)


async def test_healthz_is_ok(server: RunningServer) -> None:
    response = await _get(server, "/healthz")
    assert response.status_code == 200


async def test_readyz_is_ok_when_database_is_up(server: RunningServer) -> None:
    response = await _get(server, "/readyz")
    assert response.status_code == 200

"""SIGTERM while a run is followed over plain HTTP (graphql-sse; a multipart subscription behaves the same): the
shutdown grace period applies to it as to a run followed over a websocket, and the run is stored CANCELLED.

uvicorn closes websockets at once on SIGTERM but waits for HTTP responses still streaming before it runs the
app's shutdown; without a limit on that wait (`cli.server_options`), SHUTDOWN_GRACE_SECONDS started only once the
run had ended by itself, up to RUN_TIMEOUT_SECONDS later."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.client import RUN_AGENT, bearer
from tests.process_support import serve_env, serving_process
from tests.run_support import LONG_MESSAGE, runs_as_stored
from tests.test_http_streaming import SSE_ACCEPT

GRACE_SECONDS = 1
# 200 ms a word: the run would last about 16 s if nothing cut it short.
DELAY_MS = 200


async def follow_over_http(url: str, token: str, accept: str, started: asyncio.Event) -> str:
    """Start a run over an HTTP stream and read it to the end (or until the server closes it): the body."""
    body = {"query": RUN_AGENT, "variables": {"input": {"agentId": "assistant", "message": LONG_MESSAGE}}}
    received: list[str] = []
    headers = {"Accept": accept, **bearer(token)}
    async with (
        httpx.AsyncClient(timeout=httpx.Timeout(60)) as client,
        client.stream("POST", url, json=body, headers=headers) as response,
    ):
        try:
            async for chunk in response.aiter_text():
                received.append(chunk)
                if "RunContentDelta" in "".join(received):
                    started.set()
        except httpx.HTTPError:
            pass
    return "".join(received)


async def test_sigterm_with_a_run_followed_over_sse_ends_within_the_grace_and_stores_it_cancelled(
    new_database_url: Callable[[str], str],
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
    token: str,
) -> None:
    database_url = new_database_url("shutdown-http")
    env = serve_env(tmp_path, database_url, offline_delay_ms=str(DELAY_MS), shutdown_grace_seconds=str(GRACE_SECONDS))
    with serving_process(tmp_path, env) as served:
        started = asyncio.Event()
        follower = asyncio.create_task(follow_over_http(served.http_url, token, SSE_ACCEPT, started))
        await asyncio.wait_for(started.wait(), timeout=30)
        began = time.monotonic()
        exit_code = await asyncio.to_thread(served.stop, 60)
        took = time.monotonic() - began
        body = await asyncio.wait_for(follower, timeout=30)
    assert exit_code in (0, -signal.SIGTERM), served.stderr_file.read_text()

    run_id = _run_id(body)
    stored = (await runs_as_stored(database_url, tmp_path_factory.mktemp("reader"), token, [run_id]))[run_id]

    assert stored is not None and stored["status"] in {"COMPLETED", "CANCELLED", "ERROR"}, stored
    # The run is cut short by the shutdown (grace 1 s + cancel), not waited for to its natural end (~16 s).
    assert took < 10, f"shutdown took {took:.1f} s with an HTTP follower; the run was {stored['status']}"
    assert stored["status"] == "CANCELLED"


def _run_id(body: str) -> str:
    marker = '"runId": "'
    start = body.find(marker)
    if start < 0:
        marker = '"runId":"'
        start = body.find(marker)
    assert start >= 0, body[:500]
    start += len(marker)
    return body[start : body.index('"', start)]

"""Operations and helpers for runs that outlive their socket: follow, resume, cancel, watch sessions."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.client import RUN_AGENT, execute
from tests.conftest import RunningServer, server_settings, start_server
from tests.lock_support import InFlightStatements, OutsideLock, wait_until
from tests.matrix_support import acknowledged_ws, receive

RUN_EVENTS = """
subscription Follow($runId: ID!, $afterIndex: Int) {
  runEvents(runId: $runId, afterIndex: $afterIndex) {
    __typename runId sessionId index createdAt
    ... on RunStarted { agentId model { provider id } }
    ... on RunContentDelta { delta }
    ... on ToolCallStarted { toolCall { id name arguments } }
    ... on ToolCallCompleted { toolCall { id name arguments } result failed }
    ... on RunCompleted { content }
    ... on RunFailed { message code }
    ... on RunCancelled { reason content }
    ... on RunPaused { requirements { id kind toolCall { id name arguments } } }
  }
}
"""

CANCEL_RUN = """
mutation Cancel($runId: ID!) {
  cancelRun(input: {runId: $runId}) { run { id status content sessionId } }
}
"""

RUN = """
query Run($id: ID!) { run(id: $id) { id status input content sessionId agentId } }
"""

ACTIVE_RUN = """
query Active($id: ID!) { session(id: $id) { id activeRun { id status } } }
"""

SESSION_EVENTS = """
subscription { sessionEvents { kind sessionId runId at session { id name } } }
"""

LONG_MESSAGE = " ".join(f"word{i}" for i in range(80))


class Subscription:
    """One subscription on a raw graphql-transport-ws connection: read its messages one by one."""

    def __init__(self, ws: Any, operation_id: str) -> None:
        self.ws = ws
        self.operation_id = operation_id

    async def next(self) -> dict[str, Any]:
        """The next message for this subscription: {'type': 'next'|'error'|'complete', ...}."""
        while True:
            message = await receive(self.ws)
            if message.get("id") == self.operation_id:
                return message

    async def events(self, field: str, stop_after: int | None = None) -> list[dict[str, Any]]:
        """Data of `field` until the subscription completes (or `stop_after` events were read)."""
        out: list[dict[str, Any]] = []
        while stop_after is None or len(out) < stop_after:
            message = await self.next()
            if message["type"] == "complete":
                break
            assert message["type"] == "next", message
            assert not message["payload"].get("errors"), message
            out.append(message["payload"]["data"][field])
        return out


@asynccontextmanager
async def subscription(
    server: RunningServer, token: str, document: str, variables: dict[str, Any] | None = None
) -> AsyncIterator[Subscription]:
    """A new connection with one subscription; leaving the block drops the connection."""
    async with acknowledged_ws(server, token) as ws:
        message = {"id": "1", "type": "subscribe", "payload": {"query": document, "variables": variables or {}}}
        await ws.send(json.dumps(message))
        yield Subscription(ws, "1")


def refusal(message: dict[str, Any]) -> list[dict[str, Any]]:
    """The errors of a refused subscription: an `error` message, or a `next` with errors and no data."""
    payload = message["payload"]
    if message["type"] == "error":
        return list(payload)
    assert message["type"] == "next" and payload.get("errors") and payload.get("data") is None, message
    return list(payload["errors"])


def run_input(session_id: str | None, message: str = LONG_MESSAGE, agent_id: str = "assistant") -> dict[str, Any]:
    return {"input": {"agentId": agent_id, "sessionId": session_id, "message": message}}


async def follow(
    server: RunningServer, token: str, run_id: str, after_index: int | None = None
) -> list[dict[str, Any]]:
    """Every event runEvents gives, to the end."""
    variables = {"runId": run_id, "afterIndex": after_index}
    async with subscription(server, token, RUN_EVENTS, variables) as sub:
        return await asyncio.wait_for(sub.events("runEvents"), timeout=60)


async def follow_errors(
    server: RunningServer, token: str, run_id: str, after_index: int | None = None
) -> list[dict[str, Any]]:
    """The errors runEvents is refused with."""
    async with subscription(server, token, RUN_EVENTS, {"runId": run_id, "afterIndex": after_index}) as sub:
        return refusal(await sub.next())


async def start_run(
    server: RunningServer, token: str, session_id: str | None, seen: int, message: str = LONG_MESSAGE
) -> list[dict[str, Any]]:
    """Start a run, read its first `seen` events, then drop the connection (the run goes on)."""
    async with subscription(server, token, RUN_AGENT, run_input(session_id, message)) as sub:
        return await asyncio.wait_for(sub.events("runAgent", stop_after=seen), timeout=30)


async def run_status(server: RunningServer, token: str, run_id: str) -> dict[str, Any] | None:
    return (await execute(server, token, RUN, {"id": run_id}))["run"]


async def wait_for_status(
    server: RunningServer, token: str, run_id: str, statuses: set[str], attempts: int = 300
) -> dict[str, Any]:
    """The run once its status is one of `statuses` (bounded polling)."""
    run: dict[str, Any] | None = None
    for _ in range(attempts):
        run = await run_status(server, token, run_id)
        if run is not None and run["status"] in statuses:
            return run
        await asyncio.sleep(0.1)
    raise AssertionError(f"run {run_id} never reached {statuses}: {run}")


async def runs_as_stored(
    database_url: str, state_dir: Path, token: str, run_ids: list[str]
) -> dict[str, dict[str, Any] | None]:
    """Each run as a fresh server on the same database reads it back (None for a run it does not have)."""
    reader = start_server(server_settings(database_url, state_dir))
    try:
        return {run_id: await run_status(reader, token, run_id) for run_id in run_ids}
    finally:
        reader.stop()


def content_of(events: list[dict[str, Any]]) -> str:
    return "".join(event["delta"] for event in events if event["__typename"] == "RunContentDelta")


async def check_run_told_from_store(started_on: RunningServer, followed_on: RunningServer, token: str) -> None:
    """A calculator run on `started_on`, then followed on `followed_on` once its events are no longer held: the
    run is told from the store (RunStarted, the content as one delta, the tool events, the end), and a resume
    after index 2 gets only the end, numbered after it."""
    async with subscription(started_on, token, RUN_AGENT, run_input(None, "What is 12 * 7?", "calculator")) as sub:
        original = await asyncio.wait_for(sub.events("runAgent"), timeout=30)
    run_id = original[0]["runId"]
    await asyncio.sleep(0.2)

    replay = await follow(followed_on, token, run_id)
    resumed = await follow(followed_on, token, run_id, after_index=2)

    kinds = ["RunStarted", "RunContentDelta", "ToolCallStarted", "ToolCallCompleted", "RunCompleted"]
    assert [e["__typename"] for e in replay] == kinds
    assert [e["index"] for e in replay] == [0, 1, 2, 3, 4]
    assert replay[1]["delta"] == replay[-1]["content"] == original[-1]["content"] == "The answer is 84."
    assert replay[2]["toolCall"]["name"] == "multiply" and replay[3]["result"] == "84"
    assert [(e["__typename"], e["index"], e["content"]) for e in resumed] == [("RunCompleted", 3, "The answer is 84.")]


@dataclass
class HeldCancel:
    """A run being cancelled while the server's write of it waits on a lock of the test's own."""

    cancelling: asyncio.Task[Any]  # the cancelRun request
    watch: InFlightStatements
    lock: OutsideLock

    def writes_waiting(self) -> int:
        return self.watch.writes_on("agno_sessions")


@asynccontextmanager
async def cancelled_with_its_write_held(server: RunningServer, token: str, run_id: str) -> AsyncIterator[HeldCancel]:
    """Lock the sessions table against writers (readers go on), cancel the run, and wait until the server's write of
    the cancelled run waits on the lock. The block runs with the write held; leaving it (or `lock.release()`)
    lets the write go."""
    watch = InFlightStatements(server.services.db)
    lock = OutsideLock(server.settings.database_url, "LOCK TABLES agno_sessions READ")
    try:
        held = HeldCancel(asyncio.create_task(execute(server, token, CANCEL_RUN, {"runId": run_id})), watch, lock)
        await wait_until(lambda: held.writes_waiting() >= 1, "the cancelled run's write waits on the lock")
        yield held
    finally:
        lock.release()
        watch.close()

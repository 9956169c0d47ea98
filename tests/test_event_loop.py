"""No database call blocks the server's event loop: a run keeps streaming while other requests wait on the database.

An outside connection takes a lock, so requests that need the locked data wait inside the
database. Once they are seen waiting, a run streams; its content deltas must reach the client
while those requests are still pending. A database call that
blocked the event loop would stop the stream until the lock is released, which happens only
after the last delta arrived, so the test could not pass. No timing is measured.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from gql import Client, gql

from tests.client import RUN_AGENT, execute, post, run_agent, ws_transport
from tests.conftest import RunningServer, make_token, serving_with
from tests.lock_support import WAIT_SECONDS, InFlightStatements, OutsideLock, wait_until
from tests.matrix_support import RENAME_SESSION, create_session

WORDS = [f"word{i:02d}" for i in range(1, 41)]
LONG_MESSAGE = " ".join(WORDS)
LONG_REPLY = f"You said: {LONG_MESSAGE}"
BLOCKED_REQUESTS = 4

HISTORY = """
query History($id: ID!) {
  session(id: $id) { messages(last: 50) { nodes { role content } } }
}
"""
RUN_COUNT = "query($id: ID!) { session(id: $id) { runCount } }"


@pytest.fixture(scope="module")
def streaming_server(
    new_database_url: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    """A server of its own (so only this module's statements run on it), streaming a delta every 20 ms."""
    with serving_with(new_database_url, tmp_path_factory, "loop", offline_delay_ms=20) as running:
        yield running


@dataclass
class Outcome:
    """What the client saw of the run, and what the waiting requests returned."""

    events: list[dict[str, Any]] = field(default_factory=list)
    deltas_before_lock: list[str] = field(default_factory=list)
    deltas: list[str] = field(default_factory=list)
    pending_at_delta: list[bool] = field(default_factory=list)
    waiting_at_delta: list[int] = field(default_factory=list)
    blocked_results: list[Any] = field(default_factory=list)

    @property
    def reply(self) -> str:
        return "".join(self.deltas_before_lock + self.deltas)


async def run_while_requests_wait(
    server: RunningServer,
    token: str,
    take_lock: Callable[[], OutsideLock],
    locked_table: str,
    blocked: Callable[[], list[Coroutine[Any, Any, Any]]],
    session_id: str,
    lock_once_streaming: bool = False,
) -> Outcome:
    """Take the lock and send the blocked requests, see them wait in the database, and stream a run to its
    last delta meanwhile. With `lock_once_streaming`, the run starts first and the lock is taken at its
    first delta: Agno reads the session's runs when a run starts, so a lock on them would hold the run too."""
    watch = InFlightStatements(server.services.db)
    tasks: list[asyncio.Task[Any]] = []
    lock: OutsideLock | None = None
    outcome = Outcome()

    async def lock_and_block() -> OutsideLock:
        taken = take_lock()
        tasks.extend(asyncio.create_task(request) for request in blocked())
        await wait_until(
            lambda: watch.on(locked_table) >= len(tasks) or any(t.done() for t in tasks),
            "every blocked request waits in the database",
        )
        assert not any(t.done() for t in tasks), [t.result() for t in tasks if t.done()]
        return taken

    try:
        if not lock_once_streaming:
            lock = await lock_and_block()
        variables = {"input": {"agentId": "assistant", "message": LONG_MESSAGE, "sessionId": session_id}}
        async with (
            asyncio.timeout(WAIT_SECONDS * 2),
            Client(transport=ws_transport(server, token), fetch_schema_from_transport=False) as session,
        ):
            async for result in session.subscribe(gql(RUN_AGENT), variable_values=variables):
                run_event = result["runAgent"]
                outcome.events.append(run_event)
                if run_event["__typename"] != "RunContentDelta":
                    continue
                if lock is None:
                    outcome.deltas_before_lock.append(run_event["delta"])
                    lock = await lock_and_block()
                    continue
                if not lock.held:
                    continue
                outcome.deltas.append(run_event["delta"])
                outcome.pending_at_delta.append(not any(t.done() for t in tasks))
                outcome.waiting_at_delta.append(watch.on(locked_table))
                if outcome.reply == LONG_REPLY:
                    lock.release()
                    outcome.blocked_results = list(await asyncio.gather(*tasks))
        return outcome
    finally:
        if lock is not None:
            lock.release()
        for task in tasks:
            task.cancel()
        watch.close()


async def assert_long_reply_stored_once(server: RunningServer, token: str, outcome: Outcome) -> None:
    """The run completed with the whole reply and is stored once in its session."""
    assert outcome.events[-1]["__typename"] == "RunCompleted"
    assert outcome.events[-1]["content"] == LONG_REPLY
    stored = await execute(server, token, RUN_COUNT, {"id": outcome.events[0]["sessionId"]})
    assert stored == {"session": {"runCount": 1}}


async def test_run_streams_while_history_queries_wait_on_a_locked_runs_table(
    backend: str, streaming_server: RunningServer, user_id: str
) -> None:
    if backend == "sqlite":
        pytest.skip(
            "SQLite cannot hold a history read: Agno runs it in WAL mode, where readers never wait for a writer, "
            "and no outside connection can lock readers out while the server's pooled connections keep the file "
            "open. test_run_streams_while_writes_wait_on_a_database_lock covers SQLite with waiting writes."
        )
    token = make_token(user_id)
    seeded = await run_agent(streaming_server, token, "assistant", "history before the lock")
    session_id = seeded[0]["sessionId"]
    run_session = (await create_session(streaming_server, token))["id"]

    outcome = await run_while_requests_wait(
        streaming_server,
        token,
        lambda: OutsideLock(streaming_server.settings.database_url, "LOCK TABLES agno_runs WRITE"),
        "agno_runs",
        lambda: [post(streaming_server, token, HISTORY, {"id": session_id}) for _ in range(BLOCKED_REQUESTS)],
        run_session,
        lock_once_streaming=True,
    )

    assert outcome.reply == LONG_REPLY and len(outcome.deltas) >= len(WORDS) // 2
    assert all(outcome.pending_at_delta), outcome.pending_at_delta
    assert min(outcome.waiting_at_delta) >= BLOCKED_REQUESTS
    for response in outcome.blocked_results:
        assert response == {
            "data": {
                "session": {
                    "messages": {
                        "nodes": [
                            {"role": "USER", "content": "history before the lock"},
                            {"role": "ASSISTANT", "content": "You said: history before the lock"},
                        ]
                    }
                }
            }
        }
    await assert_long_reply_stored_once(streaming_server, token, outcome)


async def test_run_streams_while_writes_wait_on_a_database_lock(
    backend: str, streaming_server: RunningServer, user_id: str
) -> None:
    token = make_token(user_id)
    run_session = (await create_session(streaming_server, token))["id"]  # exists before the lock
    session_ids = [(await create_session(streaming_server, token))["id"] for _ in range(BLOCKED_REQUESTS)]

    outcome = await run_while_requests_wait(
        streaming_server,
        token,
        lambda: OutsideLock(streaming_server.settings.database_url, "LOCK TABLES agno_sessions READ"),
        "agno_sessions",
        lambda: [
            post(streaming_server, token, RENAME_SESSION, {"input": {"sessionId": sid, "name": f"renamed {n}"}})
            for n, sid in enumerate(session_ids)
        ],
        run_session,
        # A run is stored as it starts. MariaDB's lock on the sessions table lets that write by; SQLite's lock is on
        # the whole file, so there the lock is taken once the run streams.
        lock_once_streaming=backend == "sqlite",
    )

    # Every delta streamed while the writes waited (on SQLite, all but the first, which comes before the lock).
    assert outcome.reply == LONG_REPLY and len(outcome.deltas) + len(outcome.deltas_before_lock) == len(WORDS) + 2
    assert all(outcome.pending_at_delta), outcome.pending_at_delta
    assert min(outcome.waiting_at_delta) >= BLOCKED_REQUESTS
    assert outcome.blocked_results == [
        {"data": {"renameSession": {"session": {"id": sid, "name": f"renamed {n}"}}}}
        for n, sid in enumerate(session_ids)
    ]
    await assert_long_reply_stored_once(streaming_server, token, outcome)

"""Renaming or deleting a session while one of its runs streams: the user's action wins."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.client import execute
from tests.conftest import RunningServer, serving_with
from tests.matrix_support import acknowledged_ws, create_session, receive, subscribe_run

LONG_MESSAGE = " ".join(f"word{i}" for i in range(60))
RENAME = (
    "mutation R($id: ID!, $name: String!) { renameSession(input: {sessionId: $id, name: $name}) { session { name } } }"
)
DELETE = "mutation D($id: ID!) { deleteSession(input: {sessionId: $id}) { deletedSessionId } }"
READ = "query S($id: ID!) { session(id: $id) { name runCount } sessions(first: 50) { nodes { id } } }"
TERMINAL = {"RunCompleted", "RunFailed", "RunCancelled"}


@pytest.fixture(scope="module")
def slow_server(
    new_database_url: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    """A demo model that waits 30 ms per word, so a run is still going while the user acts."""
    with serving_with(new_database_url, tmp_path_factory, "during", offline_delay_ms=30) as running:
        yield running


async def _events_until_terminal(ws: Any) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    while True:
        message = await receive(ws)
        if message["type"] == "complete":
            return events
        assert message["type"] == "next", message
        events.append(message["payload"]["data"]["runAgent"])


async def test_a_rename_during_a_run_is_kept_after_the_run(slow_server: RunningServer, token: str) -> None:
    session = await create_session(slow_server, token, name="before")
    async with acknowledged_ws(slow_server, token) as ws:
        await subscribe_run(
            ws, "1", {"input": {"agentId": "assistant", "sessionId": session["id"], "message": LONG_MESSAGE}}
        )
        for _ in range(4):
            assert (await receive(ws))["type"] == "next"
        renamed = await execute(slow_server, token, RENAME, {"id": session["id"], "name": "after"})
        assert renamed["renameSession"]["session"]["name"] == "after"
        events = await _events_until_terminal(ws)
    assert events[-1]["__typename"] == "RunCompleted"
    stored = await execute(slow_server, token, READ, {"id": session["id"]})
    assert stored["session"] == {"name": "after", "runCount": 1}


async def test_deleting_a_session_during_a_run_stops_the_run_and_it_stays_deleted(
    slow_server: RunningServer, token: str
) -> None:
    session = await create_session(slow_server, token)
    async with acknowledged_ws(slow_server, token) as ws:
        await subscribe_run(
            ws, "1", {"input": {"agentId": "assistant", "sessionId": session["id"], "message": LONG_MESSAGE}}
        )
        for _ in range(4):
            assert (await receive(ws))["type"] == "next"
        deleted = await execute(slow_server, token, DELETE, {"id": session["id"]})
        assert deleted["deleteSession"]["deletedSessionId"] == session["id"]
        events = await _events_until_terminal(ws)
    assert events[-1]["__typename"] == "RunCancelled"
    await asyncio.sleep(0.5)  # what a late write of the run would need to show up
    stored = await execute(slow_server, token, READ, {"id": session["id"]})
    assert stored["session"] is None
    assert session["id"] not in [node["id"] for node in stored["sessions"]["nodes"]]


MESSAGES = "query M($id: ID!) { session(id: $id) { runCount messages(first: 20) { nodes { role content } } } }"
FORK = "mutation F($id: ID!) { forkSession(input: {sessionId: $id}) { session { id runCount } } }"


async def test_a_run_is_stored_as_it_starts_and_a_fork_meanwhile_takes_only_ended_runs(
    slow_server: RunningServer, token: str
) -> None:
    session = await create_session(slow_server, token)
    async with acknowledged_ws(slow_server, token) as ws:
        await subscribe_run(ws, "1", {"input": {"agentId": "assistant", "sessionId": session["id"], "message": "hi"}})
        assert (await _events_until_terminal(ws))[-1]["__typename"] == "RunCompleted"
    async with acknowledged_ws(slow_server, token) as ws:
        await subscribe_run(
            ws, "2", {"input": {"agentId": "assistant", "sessionId": session["id"], "message": LONG_MESSAGE}}
        )
        for _ in range(3):
            assert (await receive(ws))["type"] == "next"
        # Mid-run, the user's message is stored already (a reload shows it), and the run counts.
        during = (await execute(slow_server, token, MESSAGES, {"id": session["id"]}))["session"]
        forked = (await execute(slow_server, token, FORK, {"id": session["id"]}))["forkSession"]["session"]
        events = await _events_until_terminal(ws)
    assert events[-1]["__typename"] == "RunCompleted"
    assert during["runCount"] == 2
    assert [(m["role"], m["content"]) for m in during["messages"]["nodes"]] == [
        ("USER", "hi"),
        ("ASSISTANT", "You said: hi"),
        ("USER", LONG_MESSAGE),
    ]
    # The fork holds the conversation as it stood: the run still going is not copied, unfinished, into it.
    copied = (await execute(slow_server, token, MESSAGES, {"id": forked["id"]}))["session"]
    assert forked["runCount"] == 1 and [m["content"] for m in copied["messages"]["nodes"]] == ["hi", "You said: hi"]
    after = (await execute(slow_server, token, MESSAGES, {"id": session["id"]}))["session"]
    assert after["runCount"] == 2 and [m["content"] for m in after["messages"]["nodes"]][-2:] == [
        LONG_MESSAGE,
        events[-1]["content"],
    ]

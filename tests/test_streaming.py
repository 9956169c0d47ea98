"""runAgent streaming: event order, both websocket protocols, clients that leave mid-run, concurrent runs."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from gql import Client, gql

from tests.client import LEGACY_WS, RUN_AGENT, TRANSPORT_WS, execute, run_agent, ws_transport
from tests.conftest import RunningServer, make_token, serving_with, start_server
from tests.conftest import server_settings as settings_with
from tests.matrix_support import (
    RUNS,
    acknowledged_ws,
    assert_event_invariants,
    create_session,
    poll,
    receive,
    subscribe_run,
    typenames,
)

LONG_MESSAGE = " ".join(f"word{i}" for i in range(80))


@pytest.fixture(scope="module")
def slow_server(
    new_database_url: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    """A server whose demo model waits 50 ms per word, so runs last long enough to leave them or overlap them."""
    settings = settings_with(new_database_url("slow"), tmp_path_factory.mktemp("slow"), offline_delay_ms=50)
    running = start_server(settings)
    try:
        yield running
    finally:
        running.stop()


def deltas(events: list[dict[str, Any]]) -> str:
    return "".join(event["delta"] for event in events if event["__typename"] == "RunContentDelta")


async def stored_runs(server: RunningServer, token: str, session_id: str) -> list[dict[str, Any]]:
    result = await execute(server, token, RUNS, {"id": session_id, "first": 100})
    return [edge["node"] for edge in result["session"]["runs"]["edges"]]


async def test_assistant_run_streams_start_deltas_and_one_completion(server: RunningServer, user_id: str) -> None:
    token = make_token(user_id)
    events = await run_agent(server, token, "assistant", "tell me something")
    assert_event_invariants(events)
    kinds = typenames(events)
    assert kinds[-1] == "RunCompleted"
    assert set(kinds[1:-1]) == {"RunContentDelta"}
    assert events[0]["agentId"] == "assistant"
    assert events[0]["model"] == {"provider": "offline", "id": "offline-demo"}
    assert deltas(events) == events[-1]["content"] == "You said: tell me something"
    metrics = events[-1]["metrics"]
    assert metrics is not None and metrics["totalTokens"] > 0
    runs = await stored_runs(server, token, events[0]["sessionId"])
    assert [(run["id"], run["status"], run["content"]) for run in runs] == [
        (events[0]["runId"], "COMPLETED", "You said: tell me something")
    ]


async def test_calculator_run_streams_tool_events_between_start_and_completion(
    server: RunningServer, user_id: str
) -> None:
    token = make_token(user_id)
    events = await run_agent(server, token, "calculator", "What is 12 * 7?")
    assert_event_invariants(events)
    kinds = typenames(events)
    assert kinds[-1] == "RunCompleted"
    assert kinds.count("ToolCallStarted") == 1 and kinds.count("ToolCallCompleted") == 1
    started = kinds.index("ToolCallStarted")
    completed = kinds.index("ToolCallCompleted")
    assert 0 < started < completed < len(kinds) - 1
    assert events[started]["toolCall"] == events[completed]["toolCall"]
    assert events[completed]["toolCall"]["name"] == "multiply"
    assert events[completed]["result"] == "84" and events[completed]["failed"] is False
    # The answer is streamed after the tool's result.
    assert all(kind != "RunContentDelta" for kind in kinds[:completed])
    assert deltas(events) == events[-1]["content"] == "The answer is 84."


async def test_run_over_legacy_graphql_ws(server: RunningServer, user_id: str) -> None:
    token = make_token(user_id)
    session = await create_session(server, token, "calculator")
    events = await run_agent(server, token, "calculator", "What is 6 * 5?", session["id"], subprotocol=LEGACY_WS)
    assert_event_invariants(events)
    assert events[0]["sessionId"] == session["id"]
    assert "ToolCallCompleted" in typenames(events)
    assert events[-1]["__typename"] == "RunCompleted"
    assert deltas(events) == events[-1]["content"] == "The answer is 30."
    runs = await stored_runs(server, token, session["id"])
    assert [(run["status"], run["input"], run["content"]) for run in runs] == [
        ("COMPLETED", "What is 6 * 5?", "The answer is 30.")
    ]


async def wait_for_run_status(server: RunningServer, token: str, session_id: str, status: str) -> list[dict[str, Any]]:
    """The session's runs once one has `status` (storing happens just after the client leaves); bounded."""

    async def check() -> list[dict[str, Any]] | None:
        runs = await stored_runs(server, token, session_id)
        return runs if any(run["status"] == status for run in runs) else None

    runs = await poll(check, attempts=150, interval=0.1)
    assert runs, f"no {status} run was stored"
    return list(runs)


async def assert_session_still_runs(server: RunningServer, token: str, session_id: str) -> None:
    events = await run_agent(server, token, "assistant", "still there?", session_id)
    assert_event_invariants(events)
    assert events[-1]["__typename"] == "RunCompleted"
    assert events[-1]["content"] == "You said: still there?"


async def test_client_disconnecting_mid_run_with_on_disconnect_cancel_leaves_it_stored_as_cancelled(
    slow_server: RunningServer, user_id: str
) -> None:
    token = make_token(user_id)
    session = await create_session(slow_server, token, "assistant")
    received: list[dict[str, Any]] = []
    run_input = {"agentId": "assistant", "sessionId": session["id"], "message": LONG_MESSAGE, "onDisconnect": "CANCEL"}
    async with acknowledged_ws(slow_server, token) as ws:
        await subscribe_run(ws, "1", {"input": run_input})
        for _ in range(100):
            message = await receive(ws)
            assert message["type"] == "next", message
            received.append(message["payload"]["data"]["runAgent"])
            if len([e for e in received if e["__typename"] == "RunContentDelta"]) >= 3:
                break
        # Leaving the block closes the socket mid-run, without completing the subscription.
    assert typenames(received)[0] == "RunStarted"
    runs = await wait_for_run_status(slow_server, token, session["id"], "CANCELLED")
    assert len(runs) == 1
    cancelled = runs[0]
    full_answer = f"You said: {LONG_MESSAGE}"
    assert cancelled["id"] == received[0]["runId"]
    assert cancelled["input"] == LONG_MESSAGE
    assert cancelled["content"] and cancelled["content"].startswith(deltas(received))
    assert full_answer.startswith(cancelled["content"]) and len(cancelled["content"]) < len(full_answer)

    await assert_session_still_runs(slow_server, token, session["id"])
    statuses = [run["status"] for run in await stored_runs(slow_server, token, session["id"])]
    assert statuses == ["CANCELLED", "COMPLETED"]


@pytest.mark.parametrize("subprotocol", [TRANSPORT_WS, LEGACY_WS], ids=["transport-ws", "legacy-ws"])
async def test_client_stopping_the_subscription_mid_run_with_on_disconnect_cancel_leaves_it_stored_as_cancelled(
    slow_server: RunningServer, user_id: str, subprotocol: str
) -> None:
    token = make_token(user_id)
    session = await create_session(slow_server, token, "assistant")
    run_input = {"agentId": "assistant", "sessionId": session["id"], "message": LONG_MESSAGE, "onDisconnect": "CANCEL"}
    variables = {"input": run_input}
    received: list[dict[str, Any]] = []
    client = Client(transport=ws_transport(slow_server, token, subprotocol), fetch_schema_from_transport=False)
    async with client as gql_session:
        async for result in gql_session.subscribe(gql(RUN_AGENT), variable_values=variables):
            received.append(result["runAgent"])
            if len(received) >= 4:
                break  # gql stops the subscription; the socket stays open until the block ends
    assert typenames(received)[0] == "RunStarted"
    runs = await wait_for_run_status(slow_server, token, session["id"], "CANCELLED")
    assert [run["id"] for run in runs] == [received[0]["runId"]]
    assert runs[0]["content"] and runs[0]["content"].startswith(deltas(received))
    await assert_session_still_runs(slow_server, token, session["id"])


async def test_concurrent_runs_of_one_agent_in_two_sessions_keep_their_own_content(
    slow_server: RunningServer, user_id: str
) -> None:
    token = make_token(user_id)
    first_session = await create_session(slow_server, token, "assistant")
    second_session = await create_session(slow_server, token, "assistant")
    messages = {
        first_session["id"]: "alpha " * 8 + "first",
        second_session["id"]: "beta " * 8 + "second",
    }
    results = await asyncio.gather(
        *(run_agent(slow_server, token, "assistant", message, session_id) for session_id, message in messages.items())
    )
    run_ids = set()
    for (session_id, message), events in zip(messages.items(), results, strict=True):
        assert_event_invariants(events)
        assert events[0]["sessionId"] == session_id
        expected = f"You said: {' '.join(message.split())}"
        assert events[-1]["__typename"] == "RunCompleted"
        assert deltas(events) == events[-1]["content"] == expected
        runs = await stored_runs(slow_server, token, session_id)
        assert [(run["status"], run["input"], run["content"]) for run in runs] == [("COMPLETED", message, expected)]
        run_ids.add(events[0]["runId"])
    assert len(run_ids) == 2


@pytest.mark.parametrize(("coalesce_ms", "one_per_word"), [(50, False), (0, True)], ids=["coalesced", "per-token"])
def test_a_model_faster_than_the_window_streams_fewer_larger_deltas_with_nothing_lost(
    new_database_url: Callable[[str], str],
    tmp_path_factory: pytest.TempPathFactory,
    user_id: str,
    coalesce_ms: int,
    one_per_word: bool,
) -> None:
    """With no delay between words, deltas within the coalescing window go out together; 0 turns it off."""
    overrides = {"offline_delay_ms": 0, "stream_coalesce_ms": coalesce_ms}
    with serving_with(new_database_url, tmp_path_factory, f"coalesce{coalesce_ms}", **overrides) as server:
        events = asyncio.run(run_agent(server, make_token(user_id), "assistant", LONG_MESSAGE))
    assert_event_invariants(events)
    content = deltas(events)
    assert content == events[-1]["content"] == f"You said: {LONG_MESSAGE}"
    delta_count = typenames(events).count("RunContentDelta")
    words = len(content.split())
    assert (delta_count == words) if one_per_word else (1 < delta_count < words / 2), (delta_count, words)

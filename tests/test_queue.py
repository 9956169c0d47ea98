"""A second message while one streams, sent with `ifBusy: ENQUEUE`: stored PENDING at once, told its place in
line with one RunQueued, started when the runs before it end, in the order sent; cancelled by cancelRun or by a
client that leaves with onDisconnect: CANCEL; capped per session; on SQLite and MariaDB, and across two instances
over Redis."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.client import RUN_AGENT, execute
from tests.conftest import RunningServer, serving_with
from tests.matrix_support import assert_event_invariants, codes, create_session
from tests.process_support import serve_env, serving_process
from tests.run_support import (
    CANCEL_RUN,
    LONG_MESSAGE,
    Subscription,
    follow,
    refusal,
    subscription,
    wait_for_status,
)

MAX_QUEUED = 3
CONVERSATION = """
query Conversation($id: ID!) {
  session(id: $id) {
    runCount
    messages(first: 50) { nodes { role content runId } }
    runs(first: 20) { nodes { id status input } }
  }
}
"""

QUEUED = "query Queued($id: ID!) { session(id: $id) { queuedRuns { id status input } } }"


@pytest.fixture(scope="module")
def queue_server(new_database_url: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A demo model slow enough (40 ms a word) that a run still streams while the user sends more."""
    with serving_with(
        new_database_url, tmp_path_factory, "queue", offline_delay_ms=40, max_queued_per_session=MAX_QUEUED
    ) as running:
        yield running


def send_input(session_id: str | None, message: str, if_busy: str = "ENQUEUE", **more: Any) -> dict[str, Any]:
    return {"input": {"agentId": "assistant", "sessionId": session_id, "message": message, "ifBusy": if_busy, **more}}


@asynccontextmanager
async def streaming(server: Any, token: str, session_id: str, message: str = LONG_MESSAGE) -> AsyncIterator[str]:
    """A run streaming in the session (its first events read): its id; the connection stays open meanwhile."""
    async with subscription(server, token, RUN_AGENT, send_input(session_id, message, "REJECT")) as run:
        head = await asyncio.wait_for(run.events("runAgent", stop_after=2), timeout=30)
        yield str(head[0]["runId"])
        await asyncio.wait_for(run.events("runAgent"), timeout=60)


async def first_event(sub: Subscription) -> dict[str, Any]:
    message = await asyncio.wait_for(sub.next(), timeout=30)
    assert message["type"] == "next" and not message["payload"].get("errors"), message
    return dict(message["payload"]["data"]["runAgent"])


async def conversation(server: Any, token: str, session_id: str) -> dict[str, Any]:
    return dict((await execute(server, token, CONVERSATION, {"id": session_id}))["session"])


async def test_a_message_sent_while_a_run_streams_waits_in_line_then_is_answered(
    queue_server: RunningServer, token: str
) -> None:
    session_id = str((await create_session(queue_server, token))["id"])
    async with (
        streaming(queue_server, token, session_id) as first,
        subscription(queue_server, token, RUN_AGENT, send_input(session_id, "and then?")) as queued,
    ):
        told = await first_event(queued)
        assert (told["__typename"], told["index"], told["position"]) == ("RunQueued", -1, 1)
        assert told["sessionId"] == session_id and told["runId"] != first
        # Stored at once, waiting; not yet in the conversation.
        assert (await wait_for_status(queue_server, token, told["runId"], {"PENDING"}))["input"] == "and then?"
        rest = await asyncio.wait_for(queued.events("runAgent"), timeout=60)
    assert [rest[0]["__typename"], rest[0]["index"], rest[-1]["__typename"]] == ["RunStarted", 0, "RunCompleted"]
    assert rest[-1]["content"] == "You said: and then?" and {e["runId"] for e in rest} == {told["runId"]}
    assert_event_invariants(rest)
    seen = await conversation(queue_server, token, session_id)
    assert [r["id"] for r in seen["runs"]["nodes"]] == [first, told["runId"]] and seen["runCount"] == 2
    assert [m["content"] for m in seen["messages"]["nodes"]][-2:] == ["and then?", "You said: and then?"]
    # Followed again, the run tells its own events: RunQueued was not one of them.
    again = await follow(queue_server, token, told["runId"])
    assert [e["index"] for e in again] == [e["index"] for e in rest] and again[0]["__typename"] == "RunStarted"


async def test_messages_in_line_start_in_the_order_sent_and_the_line_is_capped(
    queue_server: RunningServer, token: str
) -> None:
    session_id = str((await create_session(queue_server, token))["id"])
    messages = [f"queued {n}" for n in range(MAX_QUEUED)]
    async with streaming(queue_server, token, session_id) as first:
        subs = []
        for message in messages:
            sub_context = subscription(queue_server, token, RUN_AGENT, send_input(session_id, message))
            sub = await sub_context.__aenter__()
            subs.append((sub_context, sub, await first_event(sub)))
        assert [told["position"] for _, _, told in subs] == [1, 2, 3]
        # A page opened now (a reload) finds the line in the session.
        line = (await execute(queue_server, token, QUEUED, {"id": session_id}))["session"]["queuedRuns"]
        assert [(r["id"], r["status"], r["input"]) for r in line] == [
            (told["runId"], "PENDING", message) for (_, _, told), message in zip(subs, messages, strict=True)
        ]
        async with subscription(queue_server, token, RUN_AGENT, send_input(session_id, "one too many")) as over:
            refused = refusal(await asyncio.wait_for(over.next(), timeout=30))
        assert codes(refused) == ["RATE_LIMITED"]
        ends = []
        for sub_context, sub, _ in subs:
            ends.append(await asyncio.wait_for(sub.events("runAgent"), timeout=60))
            await sub_context.__aexit__(None, None, None)
    assert [end[-1]["content"] for end in ends] == [f"You said: {message}" for message in messages]
    seen = await conversation(queue_server, token, session_id)
    assert [r["input"] for r in seen["runs"]["nodes"]] == [LONG_MESSAGE, *messages]
    assert [r["id"] for r in seen["runs"]["nodes"]] == [first, *(told["runId"] for _, _, told in subs)]
    assert "one too many" not in [m["content"] for m in seen["messages"]["nodes"]]
    assert (await execute(queue_server, token, QUEUED, {"id": session_id}))["session"]["queuedRuns"] == []


async def test_a_queued_run_is_cancelled_by_cancel_run_or_by_its_client_leaving_and_the_next_goes_on(
    queue_server: RunningServer, token: str
) -> None:
    session_id = str((await create_session(queue_server, token))["id"])
    async with (
        streaming(queue_server, token, session_id),
        subscription(queue_server, token, RUN_AGENT, send_input(session_id, "never mind")) as cancelled,
    ):
        doomed = (await first_event(cancelled))["runId"]
        leaving_input = send_input(session_id, "leaving", onDisconnect="CANCEL")
        async with subscription(queue_server, token, RUN_AGENT, leaving_input) as leaving:
            left = (await first_event(leaving))["runId"]
        assert (await wait_for_status(queue_server, token, left, {"CANCELLED"}))["status"] == "CANCELLED"
        async with subscription(queue_server, token, RUN_AGENT, send_input(session_id, "still here")) as kept:
            assert (await first_event(kept))["position"] == 2
            stored = (await execute(queue_server, token, CANCEL_RUN, {"runId": doomed}))["cancelRun"]["run"]
            assert stored["status"] == "CANCELLED"
            end = await asyncio.wait_for(cancelled.events("runAgent"), timeout=30)
            assert [e["__typename"] for e in end] == ["RunCancelled"]
            answered = await asyncio.wait_for(kept.events("runAgent"), timeout=60)
    assert answered[-1]["content"] == "You said: still here"
    seen = await conversation(queue_server, token, session_id)
    assert [r["status"] for r in seen["runs"]["nodes"]][1:] == ["CANCELLED", "CANCELLED", "COMPLETED"]


async def test_an_interrupt_starts_ahead_of_the_messages_waiting(queue_server: RunningServer, token: str) -> None:
    session_id = str((await create_session(queue_server, token))["id"])
    async with (
        streaming(queue_server, token, session_id) as first,
        subscription(queue_server, token, RUN_AGENT, send_input(session_id, "waiting")) as waiting,
    ):
        waiting_id = (await first_event(waiting))["runId"]
        urgent_input = send_input(session_id, "urgent", "INTERRUPT")
        async with subscription(queue_server, token, RUN_AGENT, urgent_input) as urgent:
            urgent_events = await asyncio.wait_for(urgent.events("runAgent"), timeout=60)
        waited = await asyncio.wait_for(waiting.events("runAgent"), timeout=60)
    assert urgent_events[0]["__typename"] == "RunStarted" and urgent_events[-1]["content"] == "You said: urgent"
    assert waited[-1]["content"] == "You said: waiting"
    seen = await conversation(queue_server, token, session_id)
    assert [(r["id"] == first, r["status"], r["input"]) for r in seen["runs"]["nodes"]] == [
        (True, "CANCELLED", LONG_MESSAGE),
        (False, "COMPLETED", "urgent"),
        (False, "COMPLETED", "waiting"),
    ]
    assert seen["runs"]["nodes"][2]["id"] == waiting_id


async def test_enqueue_on_a_free_session_or_a_new_one_starts_at_once(queue_server: RunningServer, token: str) -> None:
    session_id = str((await create_session(queue_server, token))["id"])
    for target in (session_id, None):
        async with subscription(queue_server, token, RUN_AGENT, send_input(target, "right away")) as sub:
            events = await asyncio.wait_for(sub.events("runAgent"), timeout=60)
        assert events[0]["__typename"] == "RunStarted" and events[-1]["content"] == "You said: right away"


async def test_run_events_on_a_queued_run_waits_for_it_to_start(queue_server: RunningServer, token: str) -> None:
    session_id = str((await create_session(queue_server, token))["id"])
    async with streaming(queue_server, token, session_id):
        async with subscription(queue_server, token, RUN_AGENT, send_input(session_id, "follow me")) as queued:
            run_id = (await first_event(queued))["runId"]
        followed = await follow(queue_server, token, run_id)
    assert followed[0]["__typename"] == "RunStarted" and followed[-1]["content"] == "You said: follow me"


# --- across instances ---


async def test_a_line_holds_across_two_instances_over_redis(
    new_database_url: Callable[[str], str], tmp_path: Path, token: str
) -> None:
    env = serve_env(
        tmp_path,
        new_database_url("queue-shared"),
        offline_delay_ms="20",
        redis_url="redis://127.0.0.1:6379/0",
        redis_prefix=f"agql-test-{uuid.uuid4().hex[:8]}",
    )
    with serving_process(tmp_path / "a", env) as a, serving_process(tmp_path / "b", env) as b:
        session_id = str((await create_session(a, token))["id"])
        async with (
            streaming(a, token, session_id) as first,
            subscription(b, token, RUN_AGENT, send_input(session_id, "from b")) as on_b,
        ):
            positions = [(await first_event(on_b))["position"]]
            async with subscription(a, token, RUN_AGENT, send_input(session_id, "from a")) as on_a:
                positions.append((await first_event(on_a))["position"])
                from_b = await asyncio.wait_for(on_b.events("runAgent"), timeout=60)
                from_a = await asyncio.wait_for(on_a.events("runAgent"), timeout=60)
        assert positions == [1, 2]
        assert from_b[-1]["content"] == "You said: from b" and from_a[-1]["content"] == "You said: from a"
        seen = await conversation(b, token, session_id)
        assert [r["input"] for r in seen["runs"]["nodes"]] == [LONG_MESSAGE, "from b", "from a"]
        assert seen["runs"]["nodes"][0]["id"] == first

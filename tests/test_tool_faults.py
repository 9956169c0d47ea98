"""A tool that raises or hangs: the call is reported as failed, the model is told why, and the run goes on.

The tools belong to an agent of this module, served as a user's own agents module would be
(AGNO_GRAPHQL_AGENTS=tests.test_tool_faults:make_agents), on the offline model: asked to "use the <name>
tool", it calls that tool, and after a failed call it answers "The tool <name> failed: <what the tool said>".
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from agno.agent import Agent
from agno.tools import tool

from tests.client import RUN_AGENT, execute, run_agent
from tests.conftest import RunningServer, make_token, serving_with
from tests.run_support import cancelled_with_its_write_held, follow, run_input, subscription

TOOL_TIMEOUT_SECONDS = 0.5
# Far beyond the tool timeout; bounded, so that nothing waits forever if the timeout does not work.
ASYNC_STALL_SECONDS = 30.0
# A thread cannot be stopped: it sleeps on after the timeout, and stopping the server waits for it.
THREAD_STALL_SECONDS = 2.0
FUSE_MESSAGE = "the fuse blew"

HISTORY = """
query History($id: ID!) {
  session(id: $id) {
    runs(last: 5) { nodes { status } }
    messages(last: 20) { nodes { role content toolName } }
  }
}
"""


def explode() -> str:
    """Fail on purpose."""
    raise RuntimeError(FUSE_MESSAGE)


async def stall() -> str:
    """Wait far longer than the tool timeout, without blocking the event loop."""
    await asyncio.sleep(ASYNC_STALL_SECONDS)
    return "too late"


def stall_in_thread() -> str:
    """Block far longer than the tool timeout (Agno runs a function that is not async in a thread)."""
    time.sleep(THREAD_STALL_SECONDS)
    return "too late"


@tool(name="stall_decorated")
async def stall_decorated() -> str:
    """A tool made with Agno's @tool decorator (an agno Function, not a plain function) that waits too long."""
    await asyncio.sleep(ASYNC_STALL_SECONDS)
    return "too late"


def make_agents() -> list[Agent]:
    return [
        Agent(
            id="fragile",
            name="Fragile",
            description="Has tools that fail.",
            tools=[explode, stall, stall_in_thread, stall_decorated],
        )
    ]


@pytest.fixture(scope="module")
def fragile_server(
    new_database_url: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    with serving_with(
        new_database_url,
        tmp_path_factory,
        "tool-faults",
        agents="tests.test_tool_faults:make_agents",
        tool_timeout_seconds=TOOL_TIMEOUT_SECONDS,
        run_events_retention_seconds=0,
    ) as running:
        yield running


def of_type(events: list[dict[str, Any]], typename: str) -> list[dict[str, Any]]:
    return [event for event in events if event["__typename"] == typename]


async def test_tool_that_raises_is_a_failed_call_and_the_run_goes_on(
    fragile_server: RunningServer, user_id: str
) -> None:
    events = await run_agent(fragile_server, make_token(user_id), "fragile", "Please use the explode tool.")

    kinds = [event["__typename"] for event in events]
    assert kinds[0] == "RunStarted" and kinds[-1] == "RunCompleted"
    (started,) = of_type(events, "ToolCallStarted")
    (completed,) = of_type(events, "ToolCallCompleted")
    assert started["toolCall"]["name"] == "explode"
    assert completed["toolCall"] == started["toolCall"]
    assert completed["failed"] is True
    assert FUSE_MESSAGE in completed["result"]
    assert events[-1]["content"] == f"The tool explode failed: {completed['result']}"

    # Told again from the store (the events are kept no time here), the call is still a failed one.
    replay = await follow(fragile_server, make_token(user_id), events[0]["runId"])
    (replayed,) = of_type(replay, "ToolCallCompleted")
    assert (replayed["failed"], replayed["result"]) == (True, completed["result"])


async def test_failed_tool_call_is_stored_and_the_session_goes_on(fragile_server: RunningServer, user_id: str) -> None:
    token = make_token(user_id)
    first = await run_agent(fragile_server, token, "fragile", "Please use the explode tool.")
    session_id = first[0]["sessionId"]
    second = await run_agent(fragile_server, token, "fragile", "still there?", session_id=session_id)

    history = (await execute(fragile_server, token, HISTORY, {"id": session_id}))["session"]
    assert second[-1]["__typename"] == "RunCompleted" and second[-1]["content"] == "You said: still there?"
    assert [run["status"] for run in history["runs"]["nodes"]] == ["COMPLETED", "COMPLETED"]
    messages = [(m["role"], m["toolName"]) for m in history["messages"]["nodes"]]
    assert messages == [
        ("USER", None),
        ("ASSISTANT", None),
        ("TOOL", "explode"),
        ("ASSISTANT", None),
        ("USER", None),
        ("ASSISTANT", None),
    ]
    assert FUSE_MESSAGE in history["messages"]["nodes"][2]["content"]


@pytest.mark.parametrize("tool", ["stall", "stall_in_thread", "stall_decorated"])
async def test_tool_that_hangs_fails_at_the_tool_timeout_and_the_run_finishes(
    fragile_server: RunningServer, user_id: str, tool: str
) -> None:
    events = await run_agent(fragile_server, make_token(user_id), "fragile", f"Please use the {tool} tool.")

    (completed,) = of_type(events, "ToolCallCompleted")
    assert completed["toolCall"]["name"] == tool
    assert completed["failed"] is True
    assert completed["result"] == f"The tool {tool} did not finish within {TOOL_TIMEOUT_SECONDS:g} s and was stopped."
    assert events[-1]["__typename"] == "RunCompleted"
    assert events[-1]["content"] == f"The tool {tool} failed: {completed['result']}"


CANCEL_GRACE_SECONDS = 1.0


@pytest.fixture(scope="module")
def stubborn_server(
    new_database_url: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    """Tools may take long (20 s) and a cancelled run gets one second to stop: a run cancelled in a tool that
    does not give way has its task stopped."""
    with serving_with(
        new_database_url,
        tmp_path_factory,
        "stubborn",
        agents="tests.test_tool_faults:make_agents",
        tool_timeout_seconds=20.0,
        cancel_grace_seconds=CANCEL_GRACE_SECONDS,
    ) as running:
        yield running


async def test_a_run_stopped_in_a_tool_is_stored_before_its_end_is_told(
    stubborn_server: RunningServer, user_id: str
) -> None:
    """Agno stores a run whose task was stopped in a task of its own. Its end (RunCancelled, cancelRun's answer)
    is told only once that write is done: whoever hears the run ended then finds it stored."""
    server, token = stubborn_server, make_token(user_id)
    async with subscription(server, token, RUN_AGENT, run_input(None, "Please use the stall tool.", "fragile")) as sub:
        head: list[dict[str, Any]] = []
        while not of_type(head, "ToolCallStarted"):
            head += await asyncio.wait_for(sub.events("runAgent", stop_after=1), timeout=30)
        run_id, session_id = head[0]["runId"], head[0]["sessionId"]
        tail = asyncio.create_task(sub.events("runAgent"))
        async with cancelled_with_its_write_held(server, token, run_id) as held:
            # Past the grace: the task has been stopped, and Agno's own write of the run waits on the lock.
            await asyncio.sleep(CANCEL_GRACE_SECONDS)
            assert held.writes_waiting() >= 1
            assert not tail.done() and not held.cancelling.done(), "the run's end was told before it was stored"
        events = head + await asyncio.wait_for(tail, timeout=30)
    cancelled = (await asyncio.wait_for(held.cancelling, timeout=30))["cancelRun"]["run"]

    assert events[-1]["__typename"] == "RunCancelled"
    assert (cancelled["id"], cancelled["status"]) == (run_id, "CANCELLED")
    history = (await execute(server, token, HISTORY, {"id": session_id}))["session"]
    assert [run["status"] for run in history["runs"]["nodes"]] == ["CANCELLED"]
    assert [m["role"] for m in history["messages"]["nodes"]][:1] == ["USER"]

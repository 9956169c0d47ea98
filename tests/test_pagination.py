"""Relay cursor pagination of sessions, messages and runs: forward, backward, stable while the list changes."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from tests.client import execute, run_agent
from tests.conftest import RunningServer, make_token
from tests.matrix_support import (
    AGENT_SESSIONS,
    DELETE_SESSION,
    MESSAGES,
    RUNS,
    SESSIONS,
    create_session,
    when,
)

Fetch = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
SESSION_COUNT = 25
PAGE = 7


def ids(connection: dict[str, Any]) -> list[str]:
    return [edge["node"]["id"] for edge in connection["edges"]]


def assert_cursors_match_edges(connection: dict[str, Any]) -> None:
    edges, info = connection["edges"], connection["pageInfo"]
    assert info["startCursor"] == (edges[0]["cursor"] if edges else None)
    assert info["endCursor"] == (edges[-1]["cursor"] if edges else None)


@dataclass(frozen=True)
class Direction:
    """One way through a connection: its page size and cursor arguments, the flag that says more lies ahead,
    the one that says pages lie behind, and the cursor the next page starts from."""

    size: str
    cursor: str
    ahead: str
    behind: str
    next_cursor: str


FORWARD = Direction("first", "after", "hasNextPage", "hasPreviousPage", "endCursor")
BACKWARD = Direction("last", "before", "hasPreviousPage", "hasNextPage", "startCursor")
DIRECTIONS = [pytest.param(FORWARD, id="forward"), pytest.param(BACKWARD, id="backward")]


async def page_through(
    fetch: Fetch, size: int, direction: Direction, between: Callable[[], Awaitable[None]] | None = None
) -> list[Any]:
    """Every edge, page by page in `direction`, in list order; checks the flags of each page on the way."""
    pages: list[list[Any]] = []
    cursor: str | None = None
    for _ in range(100):
        connection = await fetch({direction.size: size, direction.cursor: cursor})
        assert_cursors_match_edges(connection)
        info = connection["pageInfo"]
        assert info[direction.behind] is (cursor is not None)
        pages.append(connection["edges"])
        if not info[direction.ahead]:
            assert len(connection["edges"]) <= size
            in_list_order = pages if direction is FORWARD else pages[::-1]
            return [edge for page in in_list_order for edge in page]
        assert len(connection["edges"]) == size
        cursor = info[direction.next_cursor]
        if between is not None:
            await between()
    raise AssertionError(f"paging with {direction.size}/{direction.cursor} did not end")


async def page_forward(fetch: Fetch, size: int, between: Callable[[], Awaitable[None]] | None = None) -> list[Any]:
    """Every edge, page by page with first/after."""
    return await page_through(fetch, size, FORWARD, between)


async def page_backward(fetch: Fetch, size: int) -> list[Any]:
    """Every edge, page by page with last/before, put back in list order."""
    return await page_through(fetch, size, BACKWARD)


def sessions_fetcher(server: RunningServer, token: str, **fixed: Any) -> Fetch:
    async def fetch(variables: dict[str, Any]) -> dict[str, Any]:
        result = await execute(server, token, SESSIONS, {**fixed, **variables})
        return dict(result["sessions"])

    return fetch


def session_key(node: dict[str, Any], field: str) -> tuple[Any, str]:
    return when(node[field]), node["id"]


@dataclass
class Listed:
    """A user with 25 sessions (calculator for every third one, assistant otherwise) and the full list."""

    token: str
    full: list[dict[str, Any]]
    calculator_ids: set[str]


@pytest.fixture(scope="module")
async def listed(server: RunningServer) -> Listed:
    token = make_token(f"pager-{uuid.uuid4().hex[:12]}")
    calculator_ids: set[str] = set()
    for number in range(SESSION_COUNT):
        agent = "calculator" if number % 3 == 0 else "assistant"
        session = await create_session(server, token, agent, name=f"Session {number}")
        if agent == "calculator":
            calculator_ids.add(session["id"])
    full = await sessions_fetcher(server, token)({"first": 100})
    assert full["totalCount"] == SESSION_COUNT and not full["pageInfo"]["hasNextPage"]
    return Listed(token, [edge["node"] for edge in full["edges"]], calculator_ids)


async def test_sessions_default_order_is_newest_activity_first_ties_by_id(
    server: RunningServer, listed: Listed
) -> None:
    keys = [session_key(node, "updatedAt") for node in listed.full]
    assert keys == sorted(keys, reverse=True)
    assert len({node["id"] for node in listed.full}) == SESSION_COUNT


@pytest.mark.parametrize("direction", DIRECTIONS)
async def test_sessions_pages_cover_the_list_once_in_order(
    server: RunningServer, listed: Listed, direction: Direction
) -> None:
    edges = await page_through(sessions_fetcher(server, listed.token), PAGE, direction)
    assert [edge["node"] for edge in edges] == listed.full


async def test_sessions_first_and_last_pages_have_the_right_flags(server: RunningServer, listed: Listed) -> None:
    fetch = sessions_fetcher(server, listed.token)
    head = await fetch({"first": PAGE})
    assert head["pageInfo"]["hasNextPage"] is True and head["pageInfo"]["hasPreviousPage"] is False
    assert ids(head) == [node["id"] for node in listed.full[:PAGE]]
    tail = await fetch({"last": PAGE})
    assert tail["pageInfo"]["hasNextPage"] is False and tail["pageInfo"]["hasPreviousPage"] is True
    assert ids(tail) == [node["id"] for node in listed.full[-PAGE:]]
    everything = await fetch({"first": SESSION_COUNT})
    assert everything["pageInfo"]["hasNextPage"] is False and everything["pageInfo"]["hasPreviousPage"] is False
    after_the_end = await fetch({"first": PAGE, "after": everything["pageInfo"]["endCursor"]})
    assert after_the_end["edges"] == [] and after_the_end["pageInfo"]["hasNextPage"] is False
    assert after_the_end["pageInfo"]["startCursor"] is None and after_the_end["pageInfo"]["endCursor"] is None


async def test_sessions_default_page_size_is_20(server: RunningServer, listed: Listed) -> None:
    page = await sessions_fetcher(server, listed.token)({})
    assert ids(page) == [node["id"] for node in listed.full[:20]]
    assert page["pageInfo"]["hasNextPage"] is True


async def test_sessions_first_zero_is_an_empty_page(server: RunningServer, listed: Listed) -> None:
    page = await sessions_fetcher(server, listed.token)({"first": 0})
    assert page["edges"] == [] and page["totalCount"] == SESSION_COUNT


async def test_sessions_between_two_cursors(server: RunningServer, listed: Listed) -> None:
    fetch = sessions_fetcher(server, listed.token)
    full = await fetch({"first": 100})
    cursors = [edge["cursor"] for edge in full["edges"]]
    window = await fetch({"after": cursors[4], "before": cursors[12], "first": 100})
    assert ids(window) == [node["id"] for node in listed.full[5:12]]
    head_of_window = await fetch({"after": cursors[4], "before": cursors[12], "first": 3})
    assert ids(head_of_window) == [node["id"] for node in listed.full[5:8]]
    assert head_of_window["pageInfo"]["hasNextPage"] is True
    tail_of_window = await fetch({"after": cursors[4], "before": cursors[12], "last": 3})
    assert ids(tail_of_window) == [node["id"] for node in listed.full[9:12]]
    assert tail_of_window["pageInfo"]["hasPreviousPage"] is True


async def test_sessions_total_count_is_of_the_whole_list(server: RunningServer, listed: Listed) -> None:
    fetch = sessions_fetcher(server, listed.token)
    assert (await fetch({"first": 3}))["totalCount"] == SESSION_COUNT
    assert (await fetch({"last": 3}))["totalCount"] == SESSION_COUNT
    calculator = sessions_fetcher(server, listed.token, agentId="calculator")
    assert (await calculator({"first": 1}))["totalCount"] == len(listed.calculator_ids)


async def test_sessions_ordered_by_creation_ascending(server: RunningServer, listed: Listed) -> None:
    fetch = sessions_fetcher(server, listed.token, orderBy={"field": "CREATED_AT", "direction": "ASC"})
    edges = await page_forward(fetch, PAGE)
    nodes = [edge["node"] for edge in edges]
    keys = [session_key(node, "createdAt") for node in nodes]
    assert keys == sorted(keys)
    assert sorted(node["id"] for node in nodes) == sorted(node["id"] for node in listed.full)
    assert [edge["node"] for edge in await page_backward(fetch, PAGE)] == nodes


async def test_sessions_ordered_by_activity_ascending_is_the_default_reversed(
    server: RunningServer, listed: Listed
) -> None:
    fetch = sessions_fetcher(server, listed.token, orderBy={"field": "UPDATED_AT", "direction": "ASC"})
    assert [edge["node"] for edge in await page_forward(fetch, PAGE)] == listed.full[::-1]


async def test_sessions_filtered_by_agent(server: RunningServer, listed: Listed) -> None:
    expected = [node for node in listed.full if node["id"] in listed.calculator_ids]
    fetch = sessions_fetcher(server, listed.token, agentId="calculator")
    assert [edge["node"] for edge in await page_forward(fetch, 3)] == expected
    assert [edge["node"] for edge in await page_backward(fetch, 3)] == expected
    assert all(node["agentId"] == "calculator" for node in expected)
    nobody = await sessions_fetcher(server, listed.token, agentId="no-such-agent")({"first": 10})
    assert nobody["edges"] == [] and nobody["totalCount"] == 0


async def test_agent_sessions_are_the_viewers_sessions_of_that_agent(server: RunningServer, listed: Listed) -> None:
    async def fetch(variables: dict[str, Any]) -> dict[str, Any]:
        result = await execute(server, listed.token, AGENT_SESSIONS, {"id": "calculator", **variables})
        return dict(result["agent"]["sessions"])

    expected = [node for node in listed.full if node["id"] in listed.calculator_ids]
    assert [edge["node"] for edge in await page_forward(fetch, 4)] == expected
    assert [edge["node"] for edge in await page_backward(fetch, 4)] == expected
    assert (await fetch({"first": 1}))["totalCount"] == len(expected)


async def new_sessions(server: RunningServer, token: str) -> tuple[Fetch, list[str]]:
    """SESSION_COUNT new sessions of the token's user: the fetcher of their list, and its ids in list order."""
    for _ in range(SESSION_COUNT):
        await create_session(server, token)
    fetch = sessions_fetcher(server, token)
    return fetch, ids(await fetch({"first": 100}))


async def test_sessions_paged_while_new_ones_are_created_have_no_duplicates_or_gaps(
    server: RunningServer, token: str
) -> None:
    fetch, originals = await new_sessions(server, token)
    created: list[str] = []

    async def create_two() -> None:
        for _ in range(2):
            created.append((await create_session(server, token))["id"])

    seen = [edge["node"]["id"] for edge in await page_forward(fetch, PAGE, between=create_two)]
    assert len(seen) == len(set(seen))
    assert [session_id for session_id in seen if session_id in originals] == originals
    assert set(seen) - set(originals) <= set(created)
    assert len(created) >= 6
    after = ids(await fetch({"first": 100}))
    assert sorted(after) == sorted(originals + created)


async def test_sessions_paged_while_seen_ones_are_deleted_have_no_gaps(server: RunningServer, token: str) -> None:
    fetch, originals = await new_sessions(server, token)
    seen: list[str] = []
    after: str | None = None
    for _ in range(10):
        page = await fetch({"first": PAGE, "after": after})
        seen.extend(ids(page))
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
        # The row the cursor was taken from disappears: the cursor must still work.
        await execute(server, token, DELETE_SESSION, {"input": {"sessionId": seen[-1]}})
    assert seen == originals


async def test_activity_moves_a_session_to_the_head(server: RunningServer, token: str) -> None:
    oldest = await create_session(server, token, name="Oldest")
    for number in range(3):
        await create_session(server, token, name=f"Newer {number}")
    # Times are whole seconds: wait for the next second so the activity is strictly newer.
    start = int(time.time())
    for _ in range(40):
        if int(time.time()) > start:
            break
        await asyncio.sleep(0.05)
    events = await run_agent(server, token, "assistant", "bump", oldest["id"])
    assert events[-1]["__typename"] == "RunCompleted"
    fetch = sessions_fetcher(server, token)
    head = (await fetch({"first": 1}))["edges"][0]["node"]
    assert head["id"] == oldest["id"]
    assert head["createdAt"] == oldest["createdAt"] and when(head["updatedAt"]) > when(oldest["updatedAt"])


# A conversation of several runs: (message, roles of the run's messages without the system one, answer).
CONVERSATION = [
    ("What is 12 * 7?", ["USER", "ASSISTANT", "TOOL", "ASSISTANT"], "The answer is 84."),
    ("hello one", ["USER", "ASSISTANT"], "You said: hello one"),
    ("What is 3 + 4?", ["USER", "ASSISTANT", "TOOL", "ASSISTANT"], "The answer is 7."),
    ("hello two", ["USER", "ASSISTANT"], "You said: hello two"),
    ("What is 9 - 1?", ["USER", "ASSISTANT", "TOOL", "ASSISTANT"], "The answer is 8."),
    ("What is 6 * 5?", ["USER", "ASSISTANT", "TOOL", "ASSISTANT"], "The answer is 30."),
    ("What is 20 - 4?", ["USER", "ASSISTANT", "TOOL", "ASSISTANT"], "The answer is 16."),
]
MESSAGE_COUNT = sum(len(roles) for _, roles, _ in CONVERSATION)


@dataclass
class Conversation:
    token: str
    session_id: str
    run_ids: list[str]


@pytest.fixture(scope="module")
async def conversation(server: RunningServer) -> Conversation:
    token = make_token(f"talker-{uuid.uuid4().hex[:12]}")
    session = await create_session(server, token, "calculator")
    run_ids = []
    for message, _, answer in CONVERSATION:
        events = await run_agent(server, token, "calculator", message, session["id"])
        assert events[-1]["__typename"] == "RunCompleted" and events[-1]["content"] == answer
        run_ids.append(events[0]["runId"])
    return Conversation(token, session["id"], run_ids)


def messages_fetcher(server: RunningServer, conversation: Conversation, **fixed: Any) -> Fetch:
    async def fetch(variables: dict[str, Any]) -> dict[str, Any]:
        result = await execute(
            server, conversation.token, MESSAGES, {"id": conversation.session_id, **fixed, **variables}
        )
        return dict(result["session"]["messages"])

    return fetch


async def full_messages(server: RunningServer, conversation: Conversation, **fixed: Any) -> list[dict[str, Any]]:
    page = await messages_fetcher(server, conversation, **fixed)({"first": 100})
    assert page["pageInfo"]["hasNextPage"] is False
    return [edge["node"] for edge in page["edges"]]


async def test_messages_are_the_conversation_in_order_across_runs(
    server: RunningServer, conversation: Conversation
) -> None:
    messages = await full_messages(server, conversation)
    assert [m["role"] for m in messages] == [role for _, roles, _ in CONVERSATION for role in roles]
    run_of_each_message = [
        run_id for run_id, (_, roles, _) in zip(conversation.run_ids, CONVERSATION, strict=True) for _ in roles
    ]
    assert [m["runId"] for m in messages] == run_of_each_message
    users = [m["content"] for m in messages if m["role"] == "USER"]
    assert users == [message for message, _, _ in CONVERSATION]
    answers = [m["content"] for m in messages if m["role"] == "ASSISTANT" and m["content"]]
    assert answers == [answer for _, _, answer in CONVERSATION]
    assert len({m["id"] for m in messages}) == MESSAGE_COUNT


@pytest.mark.parametrize("direction", DIRECTIONS)
async def test_messages_pages_rebuild_the_conversation(
    server: RunningServer, conversation: Conversation, direction: Direction
) -> None:
    full = await full_messages(server, conversation)
    edges = await page_through(messages_fetcher(server, conversation), 5, direction)
    assert [edge["node"] for edge in edges] == full


async def test_messages_last_20_are_the_newest_twenty(server: RunningServer, conversation: Conversation) -> None:
    full = await full_messages(server, conversation)
    assert MESSAGE_COUNT > 20
    page = await messages_fetcher(server, conversation)({"last": 20})
    assert [edge["node"] for edge in page["edges"]] == full[-20:]
    assert page["pageInfo"]["hasPreviousPage"] is True and page["pageInfo"]["hasNextPage"] is False
    older = await messages_fetcher(server, conversation)({"last": 20, "before": page["pageInfo"]["startCursor"]})
    assert [edge["node"] for edge in older["edges"]] == full[:-20]
    assert older["pageInfo"]["hasPreviousPage"] is False


async def test_messages_default_page_is_the_first_twenty(server: RunningServer, conversation: Conversation) -> None:
    full = await full_messages(server, conversation)
    page = await messages_fetcher(server, conversation)({})
    assert [edge["node"] for edge in page["edges"]] == full[:20]
    assert page["totalCount"] == MESSAGE_COUNT


async def test_messages_leave_out_system_messages_by_default(server: RunningServer, conversation: Conversation) -> None:
    every_role = await full_messages(server, conversation, roles=["SYSTEM", "USER", "ASSISTANT", "TOOL"])
    default = await full_messages(server, conversation)
    assert "SYSTEM" not in [m["role"] for m in default]
    assert [m for m in every_role if m["role"] != "SYSTEM"] == default


async def test_messages_with_system_role_when_asked(server: RunningServer, conversation: Conversation) -> None:
    system = await full_messages(server, conversation, roles=["SYSTEM"])
    # The built-in agents have instructions: Agno stores the system message of each run.
    assert len(system) == len(CONVERSATION)
    assert all(m["role"] == "SYSTEM" for m in system)
    assert all("Use your tools for every calculation" in (m["content"] or "") for m in system)
    assert [m["runId"] for m in system] == conversation.run_ids
    every_role = await messages_fetcher(server, conversation, roles=["SYSTEM", "USER", "ASSISTANT", "TOOL"])(
        {"first": 1}
    )
    assert every_role["totalCount"] == MESSAGE_COUNT + len(CONVERSATION)
    assert every_role["edges"][0]["node"]["role"] == "SYSTEM"


async def test_messages_filtered_by_roles_page_both_ways(server: RunningServer, conversation: Conversation) -> None:
    roles = ["USER", "TOOL"]
    full = await full_messages(server, conversation, roles=roles)
    assert {m["role"] for m in full} == {"USER", "TOOL"}
    assert [m["content"] for m in full if m["role"] == "USER"] == [message for message, _, _ in CONVERSATION]
    fetch = messages_fetcher(server, conversation, roles=roles)
    assert [edge["node"] for edge in await page_forward(fetch, 3)] == full
    assert [edge["node"] for edge in await page_backward(fetch, 3)] == full
    assert (await fetch({"first": 1}))["totalCount"] == len(full)


def runs_fetcher(server: RunningServer, conversation: Conversation) -> Fetch:
    async def fetch(variables: dict[str, Any]) -> dict[str, Any]:
        result = await execute(server, conversation.token, RUNS, {"id": conversation.session_id, **variables})
        return dict(result["session"]["runs"])

    return fetch


async def test_runs_page_both_ways_in_run_order(server: RunningServer, conversation: Conversation) -> None:
    fetch = runs_fetcher(server, conversation)
    forward = [edge["node"] for edge in await page_forward(fetch, 3)]
    backward = [edge["node"] for edge in await page_backward(fetch, 3)]
    assert forward == backward
    assert [run["id"] for run in forward] == conversation.run_ids
    assert (await fetch({"first": 1}))["totalCount"] == len(CONVERSATION)


async def test_runs_carry_status_input_content_and_metrics(server: RunningServer, conversation: Conversation) -> None:
    runs = [edge["node"] for edge in (await runs_fetcher(server, conversation)({"first": 100}))["edges"]]
    assert [(run["input"], run["content"]) for run in runs] == [
        (message, answer) for message, _, answer in CONVERSATION
    ]
    for run in runs:
        assert run["status"] == "COMPLETED"
        assert run["sessionId"] == conversation.session_id and run["agentId"] == "calculator"
        metrics = run["metrics"]
        assert metrics is not None and metrics["totalTokens"] and metrics["totalTokens"] > 0
        assert metrics["inputTokens"] + metrics["outputTokens"] == metrics["totalTokens"]

"""Every operation acts for the authenticated user only: another user's session behaves like a missing one."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import pytest

from tests.client import LEGACY_WS, TRANSPORT_WS, execute, run_agent
from tests.conftest import RunningServer, make_token
from tests.matrix_support import (
    AGENT_SESSIONS,
    DELETE_SESSION,
    MESSAGES,
    RENAME_SESSION,
    RUNS,
    SESSION,
    SESSIONS,
    codes,
    create_session,
    errors_of,
    masked,
    session_snapshot,
)


@dataclass
class OwnedSession:
    """User A's session with one run, and what A saw of it before B tried anything."""

    owner_token: str
    session_id: str
    before: dict[str, Any]
    intruder_token: str


@pytest.fixture
async def owned(server: RunningServer, user_id: str) -> OwnedSession:
    owner_token = make_token(user_id)
    session = await create_session(server, owner_token, "calculator")
    events = await run_agent(server, owner_token, "calculator", "What is 12 * 7?", session["id"])
    assert events[-1]["__typename"] == "RunCompleted"
    before = await session_snapshot(server, owner_token, session["id"])
    assert before is not None
    assert before["name"] == "What is 12 * 7?" and before["runCount"] == 1
    assert [m["role"] for m in before["messages"]["nodes"]] == ["SYSTEM", "USER", "ASSISTANT", "TOOL", "ASSISTANT"]
    intruder_token = make_token(f"intruder-{uuid.uuid4().hex[:12]}")
    return OwnedSession(owner_token, session["id"], before, intruder_token)


def missing_id() -> str:
    """A random id of the same shape as a real one, that nobody holds."""
    return str(uuid.uuid4())


async def assert_owner_sees_it_unchanged(server: RunningServer, owned: OwnedSession) -> None:
    assert await session_snapshot(server, owned.owner_token, owned.session_id) == owned.before


async def test_other_users_session_reads_as_null(server: RunningServer, owned: OwnedSession) -> None:
    result = await execute(server, owned.intruder_token, SESSION, {"id": owned.session_id})
    assert result == {"session": None}
    for document in (MESSAGES, RUNS):
        assert await execute(server, owned.intruder_token, document, {"id": owned.session_id}) == {"session": None}
    await assert_owner_sees_it_unchanged(server, owned)


async def test_other_users_session_is_not_listed(server: RunningServer, owned: OwnedSession) -> None:
    own = await create_session(server, owned.intruder_token, "calculator")
    for variables in ({"first": 100}, {"last": 100}, {"first": 100, "agentId": "calculator"}):
        listed = (await execute(server, owned.intruder_token, SESSIONS, variables))["sessions"]
        assert [edge["node"]["id"] for edge in listed["edges"]] == [own["id"]]
        assert listed["totalCount"] == 1
    await assert_owner_sees_it_unchanged(server, owned)


async def test_other_users_session_is_not_among_the_agents_sessions(server: RunningServer, owned: OwnedSession) -> None:
    own = await create_session(server, owned.intruder_token, "calculator")
    result = await execute(server, owned.intruder_token, AGENT_SESSIONS, {"id": "calculator", "first": 100})
    listed = result["agent"]["sessions"]
    assert [edge["node"]["id"] for edge in listed["edges"]] == [own["id"]]
    assert listed["totalCount"] == 1
    owner_view = await execute(server, owned.owner_token, AGENT_SESSIONS, {"id": "calculator", "first": 100})
    assert [edge["node"]["id"] for edge in owner_view["agent"]["sessions"]["edges"]] == [owned.session_id]


async def test_rename_other_users_session_fails_like_a_missing_one(server: RunningServer, owned: OwnedSession) -> None:
    other = missing_id()
    theirs = await errors_of(
        execute(server, owned.intruder_token, RENAME_SESSION, {"input": {"sessionId": owned.session_id, "name": "x"}})
    )
    missing = await errors_of(
        execute(server, owned.intruder_token, RENAME_SESSION, {"input": {"sessionId": other, "name": "x"}})
    )
    assert codes(theirs) == ["NOT_FOUND"]
    assert masked(theirs, owned.session_id) == masked(missing, other)
    await assert_owner_sees_it_unchanged(server, owned)


async def test_delete_other_users_session_fails_like_a_missing_one(server: RunningServer, owned: OwnedSession) -> None:
    other = missing_id()
    theirs = await errors_of(
        execute(server, owned.intruder_token, DELETE_SESSION, {"input": {"sessionId": owned.session_id}})
    )
    missing = await errors_of(execute(server, owned.intruder_token, DELETE_SESSION, {"input": {"sessionId": other}}))
    assert codes(theirs) == ["NOT_FOUND"]
    assert masked(theirs, owned.session_id) == masked(missing, other)
    await assert_owner_sees_it_unchanged(server, owned)


@pytest.mark.parametrize("subprotocol", [TRANSPORT_WS, LEGACY_WS], ids=["transport-ws", "legacy-ws"])
async def test_run_in_other_users_session_fails_like_a_missing_one(
    server: RunningServer, owned: OwnedSession, subprotocol: str
) -> None:
    other = missing_id()
    theirs = await errors_of(
        run_agent(server, owned.intruder_token, "calculator", "What is 2 * 3?", owned.session_id, subprotocol)
    )
    missing = await errors_of(
        run_agent(server, owned.intruder_token, "calculator", "What is 2 * 3?", other, subprotocol)
    )
    assert codes(theirs) == ["NOT_FOUND"]
    assert masked(theirs, owned.session_id) == masked(missing, other)
    await assert_owner_sees_it_unchanged(server, owned)


async def test_run_with_another_agent_in_other_users_session_fails_like_a_missing_one(
    server: RunningServer, owned: OwnedSession
) -> None:
    """The session is the calculator's: naming the assistant must not reveal that it exists."""
    other = missing_id()
    theirs = await errors_of(run_agent(server, owned.intruder_token, "assistant", "hello", owned.session_id))
    missing = await errors_of(run_agent(server, owned.intruder_token, "assistant", "hello", other))
    assert codes(theirs) == ["NOT_FOUND"]
    assert masked(theirs, owned.session_id) == masked(missing, other)
    await assert_owner_sees_it_unchanged(server, owned)


async def test_intruders_failed_attempts_store_nothing_for_them(server: RunningServer, owned: OwnedSession) -> None:
    await errors_of(
        execute(server, owned.intruder_token, RENAME_SESSION, {"input": {"sessionId": owned.session_id, "name": "x"}})
    )
    await errors_of(execute(server, owned.intruder_token, DELETE_SESSION, {"input": {"sessionId": owned.session_id}}))
    await errors_of(run_agent(server, owned.intruder_token, "calculator", "What is 2 * 3?", owned.session_id))
    listed = await execute(server, owned.intruder_token, SESSIONS, {"first": 100})
    assert listed["sessions"]["edges"] == [] and listed["sessions"]["totalCount"] == 0
    await assert_owner_sees_it_unchanged(server, owned)


@pytest.mark.parametrize("variant", [str.upper, lambda text: text + " "], ids=["upper-case", "trailing-space"])
async def test_a_user_id_that_differs_only_in_case_or_spaces_is_another_user(
    server: RunningServer, owned: OwnedSession, user_id: str, variant: Any
) -> None:
    """MariaDB's default collation ignores case and trailing spaces; ownership must not."""
    lookalike = make_token(variant(user_id))
    assert await execute(server, lookalike, SESSION, {"id": owned.session_id}) == {"session": None}
    listed = (await execute(server, lookalike, SESSIONS, {"first": 100}))["sessions"]
    assert listed["edges"] == [] and listed["totalCount"] == 0
    renamed = await errors_of(
        execute(server, lookalike, RENAME_SESSION, {"input": {"sessionId": owned.session_id, "name": "x"}})
    )
    deleted = await errors_of(execute(server, lookalike, DELETE_SESSION, {"input": {"sessionId": owned.session_id}}))
    assert codes(renamed) == codes(deleted) == ["NOT_FOUND"]
    await assert_owner_sees_it_unchanged(server, owned)


@pytest.mark.parametrize("variant", [str.upper, lambda text: text + " "], ids=["upper-case", "trailing-space"])
async def test_a_session_id_that_differs_only_in_case_or_spaces_is_another_session(
    server: RunningServer, owned: OwnedSession, variant: Any
) -> None:
    lookalike = variant(owned.session_id)
    assert await execute(server, owned.owner_token, SESSION, {"id": lookalike}) == {"session": None}
    await assert_owner_sees_it_unchanged(server, owned)


async def test_an_agent_id_that_differs_only_in_case_lists_nothing(server: RunningServer, owned: OwnedSession) -> None:
    listed = await execute(server, owned.owner_token, SESSIONS, {"first": 100, "agentId": "CALCULATOR"})
    assert listed["sessions"]["edges"] == [] and listed["sessions"]["totalCount"] == 0

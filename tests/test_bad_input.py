"""Each bad input gets its error code, and nothing stored changes."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.client import execute, run_agent
from tests.conftest import RunningServer, make_token
from tests.matrix_support import (
    MESSAGES,
    RENAME_SESSION,
    RUNS,
    SESSIONS,
    codes,
    create_session,
    errors_of,
    session_snapshot,
    user_snapshot,
)


async def _user_with_history(server: RunningServer, user_id: str) -> tuple[str, str, dict[str, Any]]:
    """A user with one named session holding a run; their token, the session id and all they can read."""
    token = make_token(user_id)
    session = await create_session(server, token, "assistant", name="Kept")
    events = await run_agent(server, token, "assistant", "first message", session["id"])
    assert events[-1]["__typename"] == "RunCompleted"
    return token, session["id"], await user_snapshot(server, token)


async def _cursors(server: RunningServer, token: str, session_id: str) -> dict[str, str]:
    """A real cursor of each list kind."""
    sessions = await execute(server, token, SESSIONS, {"first": 1})
    messages = await execute(server, token, MESSAGES, {"id": session_id, "first": 1})
    runs = await execute(server, token, RUNS, {"id": session_id, "first": 1})
    return {
        "sessions": sessions["sessions"]["edges"][0]["cursor"],
        "messages": messages["session"]["messages"]["edges"][0]["cursor"],
        "runs": runs["session"]["runs"]["edges"][0]["cursor"],
    }


PAGE_ARGUMENTS = [
    pytest.param({"first": 101}, id="first-over-100"),
    pytest.param({"last": 101}, id="last-over-100"),
    pytest.param({"first": -1}, id="first-negative"),
    pytest.param({"last": -1}, id="last-negative"),
    pytest.param({"first": 1, "last": 1}, id="first-and-last"),
    pytest.param({"after": "garbage"}, id="garbage-after"),
    pytest.param({"before": "!!not base64!!"}, id="garbage-before"),
    pytest.param({"after": "W10"}, id="empty-list-cursor"),
    pytest.param({"after": "x" * 600}, id="overlong-cursor"),
]


@pytest.mark.parametrize("arguments", PAGE_ARGUMENTS)
@pytest.mark.parametrize("connection", ["sessions", "messages", "runs"])
async def test_bad_page_arguments_are_bad_user_input(
    server: RunningServer, user_id: str, connection: str, arguments: dict[str, Any]
) -> None:
    token, session_id, before = await _user_with_history(server, user_id)
    document = {"sessions": SESSIONS, "messages": MESSAGES, "runs": RUNS}[connection]
    errors = await errors_of(execute(server, token, document, {"id": session_id, **arguments}))
    assert codes(errors) == ["BAD_USER_INPUT"]
    assert await user_snapshot(server, token) == before


@pytest.mark.parametrize("connection", ["sessions", "messages", "runs"])
async def test_cursor_of_another_list_is_bad_user_input(server: RunningServer, user_id: str, connection: str) -> None:
    token, session_id, before = await _user_with_history(server, user_id)
    cursors = await _cursors(server, token, session_id)
    document = {"sessions": SESSIONS, "messages": MESSAGES, "runs": RUNS}[connection]
    for kind, cursor in cursors.items():
        if kind == connection:
            continue
        for argument in ("after", "before"):
            errors = await errors_of(execute(server, token, document, {"id": session_id, argument: cursor}))
            assert codes(errors) == ["BAD_USER_INPUT"], (kind, argument)
    assert await user_snapshot(server, token) == before


async def test_sessions_cursor_of_another_order_is_bad_user_input(server: RunningServer, user_id: str) -> None:
    """A cursor holds a position in one ordering: by activity is another list than by creation."""
    token, _session_id, before = await _user_with_history(server, user_id)
    by_activity = await execute(server, token, SESSIONS, {"first": 1})
    cursor = by_activity["sessions"]["edges"][0]["cursor"]
    by_creation = {"field": "CREATED_AT", "direction": "DESC"}
    for argument in ("after", "before"):
        errors = await errors_of(execute(server, token, SESSIONS, {"orderBy": by_creation, argument: cursor}))
        assert codes(errors) == ["BAD_USER_INPUT"], argument
    assert await user_snapshot(server, token) == before


async def test_page_size_of_exactly_100_is_accepted(server: RunningServer, user_id: str) -> None:
    token = make_token(user_id)
    result = await execute(server, token, SESSIONS, {"first": 100})
    assert result["sessions"]["edges"] == []
    result = await execute(server, token, SESSIONS, {"last": 100})
    assert result["sessions"]["edges"] == []


async def test_create_session_with_taken_id_of_own_session_is_bad_user_input(
    server: RunningServer, user_id: str
) -> None:
    token, session_id, before = await _user_with_history(server, user_id)
    errors = await errors_of(create_session(server, token, "calculator", name="Overwritten", session_id=session_id))
    assert codes(errors) == ["BAD_USER_INPUT"]
    assert await user_snapshot(server, token) == before


async def test_create_session_with_taken_id_of_another_users_session_is_bad_user_input(
    server: RunningServer, user_id: str
) -> None:
    owner_token, session_id, owner_before = await _user_with_history(server, user_id)
    other_token = make_token(f"other-{uuid.uuid4().hex[:12]}")
    errors = await errors_of(create_session(server, other_token, "assistant", name="Mine now", session_id=session_id))
    assert codes(errors) == ["BAD_USER_INPUT"]
    assert await user_snapshot(server, owner_token) == owner_before
    assert (await execute(server, other_token, SESSIONS, {"first": 10}))["sessions"]["totalCount"] == 0


async def test_create_session_of_unknown_agent_is_not_found(server: RunningServer, user_id: str) -> None:
    token = make_token(user_id)
    wanted = str(uuid.uuid4())
    errors = await errors_of(create_session(server, token, "no-such-agent", session_id=wanted))
    assert codes(errors) == ["NOT_FOUND"]
    assert await session_snapshot(server, token, wanted) is None
    assert (await execute(server, token, SESSIONS, {"first": 10}))["sessions"]["totalCount"] == 0


@pytest.mark.parametrize("name", ["", "   ", "\n\t "], ids=["empty", "spaces", "whitespace"])
async def test_create_session_with_blank_name_is_bad_user_input(server: RunningServer, user_id: str, name: str) -> None:
    token = make_token(user_id)
    errors = await errors_of(create_session(server, token, "assistant", name=name))
    assert codes(errors) == ["BAD_USER_INPUT"]
    assert (await execute(server, token, SESSIONS, {"first": 10}))["sessions"]["totalCount"] == 0


@pytest.mark.parametrize("name", ["", "   ", "\n\t "], ids=["empty", "spaces", "whitespace"])
async def test_rename_to_blank_name_is_bad_user_input(server: RunningServer, user_id: str, name: str) -> None:
    token, session_id, before = await _user_with_history(server, user_id)
    variables = {"input": {"sessionId": session_id, "name": name}}
    errors = await errors_of(execute(server, token, RENAME_SESSION, variables))
    assert codes(errors) == ["BAD_USER_INPUT"]
    assert await user_snapshot(server, token) == before


async def test_run_of_unknown_agent_is_not_found(server: RunningServer, user_id: str) -> None:
    token, session_id, before = await _user_with_history(server, user_id)
    assert codes(await errors_of(run_agent(server, token, "no-such-agent", "hello"))) == ["NOT_FOUND"]
    assert codes(await errors_of(run_agent(server, token, "no-such-agent", "hello", session_id))) == ["NOT_FOUND"]
    assert await user_snapshot(server, token) == before


@pytest.mark.parametrize("message", ["", "   ", "\n\n\t"], ids=["empty", "spaces", "whitespace"])
async def test_run_with_empty_message_is_bad_user_input(server: RunningServer, user_id: str, message: str) -> None:
    token, session_id, before = await _user_with_history(server, user_id)
    assert codes(await errors_of(run_agent(server, token, "assistant", message))) == ["BAD_USER_INPUT"]
    assert codes(await errors_of(run_agent(server, token, "assistant", message, session_id))) == ["BAD_USER_INPUT"]
    assert await user_snapshot(server, token) == before


async def test_run_with_message_over_the_limit_is_bad_user_input(server: RunningServer, user_id: str) -> None:
    token, session_id, before = await _user_with_history(server, user_id)
    limit = server.settings.max_message_chars
    assert limit == 32_000
    too_long = "a" * (limit + 1)
    assert codes(await errors_of(run_agent(server, token, "assistant", too_long))) == ["BAD_USER_INPUT"]
    assert codes(await errors_of(run_agent(server, token, "assistant", too_long, session_id))) == ["BAD_USER_INPUT"]
    assert await user_snapshot(server, token) == before


async def test_run_with_message_at_the_limit_is_accepted(server: RunningServer, user_id: str) -> None:
    token = make_token(user_id)
    message = "a" * server.settings.max_message_chars
    events = await run_agent(server, token, "assistant", message)
    assert events[-1]["__typename"] == "RunCompleted"
    assert events[-1]["content"] == f"You said: {message}"


async def test_run_with_another_agent_in_own_session_is_bad_user_input(server: RunningServer, user_id: str) -> None:
    token, session_id, before = await _user_with_history(server, user_id)
    assert codes(await errors_of(run_agent(server, token, "calculator", "What is 1 + 2?", session_id))) == [
        "BAD_USER_INPUT"
    ]
    assert await user_snapshot(server, token) == before


async def test_run_in_missing_session_is_not_found(server: RunningServer, user_id: str) -> None:
    token, _session_id, before = await _user_with_history(server, user_id)
    missing = str(uuid.uuid4())
    assert codes(await errors_of(run_agent(server, token, "assistant", "hello", missing))) == ["NOT_FOUND"]
    assert await session_snapshot(server, token, missing) is None
    assert await user_snapshot(server, token) == before

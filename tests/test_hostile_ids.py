"""Hostile identifiers: huge, SQL, path or control characters, or someone else's. Every operation answers
as for a missing thing (null, NOT_FOUND) or refuses the argument (BAD_USER_INPUT); none leaks another user's
data or fails internally, and nothing stored changes.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

import pytest

from tests.client import operation, post, run_agent
from tests.conftest import RunningServer, make_token
from tests.matrix_support import (
    AGENT_SESSIONS,
    DELETE_SESSION,
    RENAME_SESSION,
    SESSION,
    SESSIONS,
    codes,
    create_session,
    errors_of,
    user_snapshot,
)
from tests.run_support import CANCEL_RUN, RUN, follow_errors

HOSTILE_IDS = {
    "huge": "s" * 100_000,
    "one over the limit": "s" * 129,
    "sql quote": "' OR '1'='1",
    "sql statement": "x'); DROP TABLE agno_sessions; --",
    "sql wildcard": "%",
    "sql single-character wildcard": "_",
    "path traversal": "../../etc/passwd",
    "encoded path": "..%2F..%2Fetc%2Fpasswd",
    "backslashes": "..\\..\\windows\\system32",
    "nul byte": "abc\x00def",
    "newline": "abc\ndef",
    "unicode": "séance-会话-🙂",
    "json operator": '{"$ne": null}',
}
MISSING_OR_REFUSED = {"NOT_FOUND", "BAD_USER_INPUT"}
AGENT = "query Agent($id: ID!) { agent(id: $id) { id } }"


@dataclass
class Owner:
    token: str
    session_id: str
    session_name: str
    run_id: str
    before: dict[str, Any]


@pytest.fixture
async def owner(server: RunningServer, user_id: str) -> Owner:
    """Someone with a named session holding a run; and all they could read before anyone tried anything."""
    token = make_token(user_id)
    name = f"Private plans {uuid.uuid4().hex[:8]}"
    session = await create_session(server, token, "assistant", name=name)
    events = await run_agent(server, token, "assistant", "my secret message", session["id"])
    assert events[-1]["__typename"] == "RunCompleted"
    return Owner(token, session["id"], name, events[0]["runId"], await user_snapshot(server, token))


def hostile_ids(owner: Owner) -> dict[str, str]:
    """The hostile ids, and the owner's real session and run ids, which are someone else's to the intruder."""
    return {**HOSTILE_IDS, "someone else's session": owner.session_id, "someone else's run": owner.run_id}


def intruder() -> str:
    return make_token(f"intruder-{uuid.uuid4().hex[:12]}")


def assert_nothing_leaked(owner: Owner, response: Any) -> None:
    shown = json.dumps(response)
    assert "INTERNAL_SERVER_ERROR" not in shown
    for secret in (owner.session_name, "my secret message", "You said"):
        assert secret not in shown


async def assert_owner_unchanged(server: RunningServer, owner: Owner) -> None:
    assert await user_snapshot(server, owner.token) == owner.before


@pytest.mark.parametrize(
    ("document", "argument", "field"),
    [(SESSION, "id", "session"), (RUN, "id", "run"), (AGENT, "id", "agent")],
    ids=["session", "run", "agent"],
)
async def test_reading_by_a_hostile_id_finds_nothing(
    server: RunningServer, owner: Owner, document: str, argument: str, field: str
) -> None:
    token = intruder()
    for case, value in hostile_ids(owner).items():
        response = await post(server, token, document, {argument: value})
        assert_nothing_leaked(owner, response)
        assert response == {"data": {field: None}}, case
    await assert_owner_unchanged(server, owner)


@pytest.mark.parametrize("document", [SESSIONS, AGENT_SESSIONS], ids=["sessions", "agent-sessions"])
async def test_listing_by_a_hostile_agent_id_lists_nothing(server: RunningServer, owner: Owner, document: str) -> None:
    token = intruder()
    await create_session(server, token, "assistant")
    for case, value in HOSTILE_IDS.items():
        response = await post(server, token, document, {"agentId": value, "id": value, "first": 10})
        assert_nothing_leaked(owner, response)
        listed = response["data"].get("sessions") or (response["data"].get("agent") or {}).get("sessions")
        assert listed is None or listed["totalCount"] == 0, case


@pytest.mark.parametrize(
    ("document", "make_input"),
    [
        (RENAME_SESSION, lambda value: {"input": {"sessionId": value, "name": "Taken over"}}),
        (DELETE_SESSION, lambda value: {"input": {"sessionId": value}}),
        (CANCEL_RUN, lambda value: {"runId": value}),
    ],
    ids=["rename", "delete", "cancel"],
)
async def test_changing_by_a_hostile_id_is_not_found_or_bad_input(
    server: RunningServer, owner: Owner, document: str, make_input: Any
) -> None:
    token = intruder()
    for case, value in hostile_ids(owner).items():
        response = await post(server, token, document, make_input(value))
        assert_nothing_leaked(owner, response)
        assert response.get("data") is None, case
        assert len(response["errors"]) == 1 and set(codes(response["errors"])) <= MISSING_OR_REFUSED, (case, response)
    await assert_owner_unchanged(server, owner)


async def test_running_in_a_hostile_session_id_is_not_found_or_bad_input(server: RunningServer, owner: Owner) -> None:
    token = intruder()
    for case, value in hostile_ids(owner).items():
        errors = await errors_of(run_agent(server, token, "assistant", "hello", value))
        assert_nothing_leaked(owner, errors)
        assert len(errors) == 1 and set(codes(errors)) <= MISSING_OR_REFUSED, (case, errors)
    await assert_owner_unchanged(server, owner)


async def test_following_a_hostile_run_id_is_not_found_or_bad_input(server: RunningServer, owner: Owner) -> None:
    token = intruder()
    for case, value in hostile_ids(owner).items():
        errors = await follow_errors(server, token, value)
        assert_nothing_leaked(owner, errors)
        assert len(errors) == 1 and set(codes(errors)) <= MISSING_OR_REFUSED, (case, errors)
    await assert_owner_unchanged(server, owner)


UNSTORABLE = {"huge", "one over the limit", "nul byte", "newline"}


async def test_a_session_created_with_a_hostile_id_is_refused_or_kept_exactly(
    server: RunningServer, owner: Owner, user_id: str
) -> None:
    """Ids the server refuses are BAD_USER_INPUT; the others are stored as given and found by nothing else."""
    token = make_token(f"creator-{user_id}")
    for case, value in HOSTILE_IDS.items():
        wanted = value if case in UNSTORABLE else f"{value}-{user_id}"
        variables = {"input": {"agentId": "assistant", "sessionId": wanted}}
        response = await post(server, token, operation("CreateSession"), variables)
        if case in UNSTORABLE:
            assert codes(response["errors"]) == ["BAD_USER_INPUT"], (case, response)
            continue
        assert response["data"]["createSession"]["session"]["id"] == wanted, case
        assert (await post(server, token, SESSION, {"id": wanted}))["data"]["session"]["id"] == wanted, case
    listed = (await post(server, token, SESSIONS, {"first": 100}))["data"]["sessions"]
    assert listed["totalCount"] == len(HOSTILE_IDS) - len(UNSTORABLE)
    await assert_owner_unchanged(server, owner)

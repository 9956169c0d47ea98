"""Runs that pause for a person: the helpdesk agent's four kinds of requirement, answered, refused, answered wrongly,
cancelled, typed over, continued twice at once, followed across parts, on SQLite and MariaDB."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from tests.client import LEGACY_WS, TRANSPORT_WS, execute, operation, run_agent, subscribe
from tests.conftest import RunningServer, make_token, server_settings, start_server
from tests.matrix_support import codes, create_session, errors_of
from tests.pause_support import ASK, continue_run, good_answer, paused_run
from tests.run_support import CANCEL_RUN, SESSION_EVENTS, follow, subscription
from tests.test_http_streaming import open_stream, stream_results

KINDS = ["CONFIRMATION", "USER_INPUT", "USER_FEEDBACK", "EXTERNAL_EXECUTION"]

PAUSED_RUN = """
query PausedRun($id: ID!) {
  run(id: $id) { id status requirements { id kind toolCall { name } } }
}
"""
ACTIVE_RUN = """
query ActiveRun($id: ID!) { session(id: $id) { activeRun { id status requirements { id } } } }
"""
HISTORY = """
query History($id: ID!) {
  session(id: $id) {
    messages(first: 50) { nodes { id role content toolCalls { id name } toolCallId } }
    runs(first: 10) { nodes { id status } }
  }
}
"""


def typenames(events: list[dict[str, Any]]) -> list[str]:
    return [event["__typename"] for event in events]


def indexes(events: list[dict[str, Any]]) -> list[int]:
    return [event["index"] for event in events]


async def run_of(server: RunningServer, token: str, run_id: str) -> dict[str, Any]:
    return dict((await execute(server, token, PAUSED_RUN, {"id": run_id}))["run"])


# --- every kind, answered ---


@pytest.mark.parametrize("kind", KINDS)
async def test_a_run_pauses_once_then_continues_to_one_end_numbering_on(
    server: RunningServer, token: str, kind: str
) -> None:
    events, paused = await paused_run(server, token, kind)
    assert typenames(events).count("RunPaused") == 1 and "RunCompleted" not in typenames(events)
    [requirement] = paused["requirements"]
    assert requirement["kind"] == kind
    assert requirement["toolCall"]["name"] in ASK[kind]
    stored = await run_of(server, token, paused["runId"])
    assert stored["status"] == "PAUSED" and [r["id"] for r in stored["requirements"]] == [requirement["id"]]

    rest = await continue_run(server, token, paused["runId"], [good_answer(requirement)])
    assert rest[0]["__typename"] == "RunContinued"
    assert typenames(rest)[-1] == "RunCompleted" and typenames(rest).count("RunCompleted") == 1
    assert indexes(events + rest) == list(range(len(events) + len(rest)))
    assert {e["runId"] for e in events + rest} == {paused["runId"]}
    completed = [e for e in rest if e["__typename"] == "ToolCallCompleted"]
    assert [e["toolCall"]["id"] for e in completed] == [requirement["toolCall"]["id"]]
    assert completed[0]["failed"] is False
    done = await run_of(server, token, paused["runId"])
    assert done["status"] == "COMPLETED" and done["requirements"] == []


async def test_requirements_say_what_to_fill_in_and_what_to_choose(server: RunningServer, token: str) -> None:
    _, form = await paused_run(server, token, "USER_INPUT")
    fields = {f["name"]: f for f in form["requirements"][0]["inputFields"]}
    assert {name: (f["type"], f["value"]) for name, f in fields.items()} == {
        "summary": ("str", None),
        "priority": ("int", None),
    }
    _, questions = await paused_run(server, token, "USER_FEEDBACK")
    asked = questions["requirements"][0]["questions"]
    assert [(q["header"], q["multiSelect"]) for q in asked] == [("Plan", False), ("Extras", True)]
    assert [o["label"] for o in asked[0]["options"]] == ["Basic", "Team"]
    assert questions["requirements"][0]["inputFields"] == []


async def test_the_answers_reach_the_tool(server: RunningServer, token: str) -> None:
    _, paused = await paused_run(server, token, "USER_INPUT")
    rest = await continue_run(server, token, paused["runId"], [good_answer(paused["requirements"][0])])
    completed = next(e for e in rest if e["__typename"] == "ToolCallCompleted")
    assert completed["result"] == "Ticket opened at priority 1: The printer is on fire"
    assert rest[-1]["content"].endswith("Ticket opened at priority 1: The printer is on fire.")


async def test_a_client_run_tool_and_a_choice_are_told_as_tool_calls(server: RunningServer, token: str) -> None:
    _, external = await paused_run(server, token, "EXTERNAL_EXECUTION")
    rest = await continue_run(server, token, external["runId"], [good_answer(external["requirements"][0])])
    told = [e for e in rest if e["__typename"] in ("ToolCallStarted", "ToolCallCompleted")]
    assert typenames(told) == ["ToolCallStarted", "ToolCallCompleted"]
    assert told[1]["result"] == "up 3 days, load average 0.42" and told[1]["failed"] is False
    assert "up 3 days" in rest[-1]["content"]

    _, feedback = await paused_run(server, token, "USER_FEEDBACK")
    rest = await continue_run(server, token, feedback["runId"], [good_answer(feedback["requirements"][0])])
    chosen = next(e for e in rest if e["__typename"] == "ToolCallCompleted")
    assert '"Team"' in chosen["result"] and '"Audit log"' in chosen["result"]
    assert "Team" in rest[-1]["content"]
    # What streamed is what the history keeps.
    history = (await execute(server, token, HISTORY, {"id": feedback["sessionId"]}))["session"]
    stored = [m["content"] for m in history["messages"]["nodes"] if m["role"] == "TOOL"]
    assert stored == [chosen["result"]]


# --- refusal ---


@pytest.mark.parametrize("note", ["Not during office hours.", None])
async def test_a_refused_call_does_not_run_and_the_model_is_told(
    server: RunningServer, token: str, note: str | None
) -> None:
    _, paused = await paused_run(server, token, "CONFIRMATION")
    requirement = paused["requirements"][0]
    answer = {"requirementId": requirement["id"], "confirmed": False, "note": note}
    rest = await continue_run(server, token, paused["runId"], [answer])
    said = note or "Refused by the user."
    completed = [e for e in rest if e["__typename"] == "ToolCallCompleted"]
    assert [(e["toolCall"]["id"], e["failed"], e["result"]) for e in completed] == [
        (requirement["toolCall"]["id"], True, said)
    ]
    assert "restarted" not in (rest[-1]["content"] or "") and said in rest[-1]["content"]
    history = (await execute(server, token, HISTORY, {"id": paused["sessionId"]}))["session"]
    tool_messages = [m for m in history["messages"]["nodes"] if m["role"] == "TOOL"]
    assert [(m["toolCallId"], m["content"]) for m in tool_messages] == [(requirement["toolCall"]["id"], said)]


async def test_the_history_shows_the_call_once_and_its_result_once(server: RunningServer, token: str) -> None:
    _, paused = await paused_run(server, token, "CONFIRMATION")
    call_id = paused["requirements"][0]["toolCall"]["id"]
    before = (await execute(server, token, HISTORY, {"id": paused["sessionId"]}))["session"]["messages"]["nodes"]
    assert [m["role"] for m in before] == ["USER", "ASSISTANT"]
    await continue_run(server, token, paused["runId"], [good_answer(paused["requirements"][0])])
    after = (await execute(server, token, HISTORY, {"id": paused["sessionId"]}))["session"]["messages"]["nodes"]
    assert [m["role"] for m in after] == ["USER", "ASSISTANT", "TOOL", "ASSISTANT"]
    assert len({m["id"] for m in after}) == len(after)
    assert [c["id"] for m in after for c in m["toolCalls"]] == [call_id]


# --- wrong answers change nothing ---


def wrong_answers(requirement: dict[str, Any]) -> list[dict[str, Any]]:
    """Answers of the wrong shape for the requirement's kind."""
    rid = requirement["id"]
    kind = requirement["kind"]
    if kind == "CONFIRMATION":
        return [{"requirementId": rid}, {"requirementId": rid, "confirmed": True, "result": "x"}]
    if kind == "USER_INPUT":
        return [
            {"requirementId": rid, "values": {"summary": "x"}},
            {"requirementId": rid, "values": {"summary": "x", "priority": "high"}},
            {"requirementId": rid, "values": {"summary": "x", "priority": 1, "colour": "red"}},
            {"requirementId": rid, "values": [1, 2]},
            {"requirementId": rid, "confirmed": True},
        ]
    if kind == "USER_FEEDBACK":
        return [
            {"requirementId": rid, "selections": [["Team"]]},
            {"requirementId": rid, "selections": [["Gold"], ["Backups"]]},
            {"requirementId": rid, "selections": [["Team", "Basic"], ["Backups"]]},
            {"requirementId": rid, "selections": [["Team"], []]},
        ]
    return [{"requirementId": rid}, {"requirementId": rid, "result": "x", "note": "y"}]


@pytest.mark.parametrize("kind", KINDS)
async def test_a_wrong_answer_is_refused_naming_the_requirement_and_the_run_stays_paused(
    server: RunningServer, token: str, kind: str
) -> None:
    _, paused = await paused_run(server, token, kind)
    requirement = paused["requirements"][0]
    for answer in wrong_answers(requirement):
        errors = await errors_of(continue_run(server, token, paused["runId"], [answer]))
        assert codes(errors) == ["BAD_USER_INPUT"], (answer, errors)
        assert errors[0]["extensions"]["requirementId"] == requirement["id"], errors
    for answers in ([], [good_answer(requirement), good_answer(requirement)]):
        errors = await errors_of(continue_run(server, token, paused["runId"], answers))
        assert codes(errors) == ["BAD_USER_INPUT"] and errors[0]["extensions"]["requirementId"] == requirement["id"]
    unknown = {**good_answer(requirement), "requirementId": "no-such-requirement"}
    errors = await errors_of(continue_run(server, token, paused["runId"], [unknown]))
    assert codes(errors) == ["BAD_USER_INPUT"] and errors[0]["extensions"]["requirementId"] == "no-such-requirement"
    stored = await run_of(server, token, paused["runId"])
    assert stored["status"] == "PAUSED" and [r["id"] for r in stored["requirements"]] == [requirement["id"]]
    rest = await continue_run(server, token, paused["runId"], [good_answer(requirement)])
    assert typenames(rest)[-1] == "RunCompleted"


async def test_a_run_that_is_not_paused_cannot_be_continued(server: RunningServer, token: str) -> None:
    _, paused = await paused_run(server, token, "CONFIRMATION")
    answer = good_answer(paused["requirements"][0])
    await continue_run(server, token, paused["runId"], [answer])
    errors = await errors_of(continue_run(server, token, paused["runId"], [answer]))
    assert codes(errors) == ["RUN_NOT_PAUSED"]


async def test_another_users_paused_run_is_not_found(server: RunningServer, user_id: str, token: str) -> None:
    _, paused = await paused_run(server, token, "CONFIRMATION")
    intruder = make_token(f"{user_id}-intruder")
    answer = good_answer(paused["requirements"][0])
    assert codes(await errors_of(continue_run(server, intruder, paused["runId"], [answer]))) == ["NOT_FOUND"]
    assert (await execute(server, intruder, PAUSED_RUN, {"id": paused["runId"]}))["run"] is None
    assert (await run_of(server, token, paused["runId"]))["status"] == "PAUSED"


# --- where a paused run shows ---


async def test_a_paused_run_is_the_sessions_active_run_and_its_events_replay_to_the_pause(
    server: RunningServer, token: str
) -> None:
    events, paused = await paused_run(server, token, "EXTERNAL_EXECUTION")
    active = (await execute(server, token, ACTIVE_RUN, {"id": paused["sessionId"]}))["session"]["activeRun"]
    assert active["id"] == paused["runId"] and active["status"] == "PAUSED" and len(active["requirements"]) == 1
    replayed = await follow(server, token, paused["runId"])
    assert typenames(replayed) == typenames(events) and indexes(replayed) == indexes(events)
    rest = await continue_run(server, token, paused["runId"], [good_answer(paused["requirements"][0])])
    across = await follow(server, token, paused["runId"], after_index=-1)
    assert indexes(across) == list(range(len(events) + len(rest)))
    assert typenames(across)[-1] == "RunCompleted"
    after_pause = await follow(server, token, paused["runId"], after_index=paused["index"])
    assert indexes(after_pause) == indexes(rest)
    active = (await execute(server, token, ACTIVE_RUN, {"id": paused["sessionId"]}))["session"]["activeRun"]
    assert active is None


async def test_the_users_other_tabs_hear_that_the_run_paused(server: RunningServer, token: str) -> None:
    async with subscription(server, token, SESSION_EVENTS) as tabs:
        await asyncio.sleep(0.2)
        _, paused = await paused_run(server, token, "CONFIRMATION")
        heard: list[tuple[str, str | None]] = []
        while ("RUN_PAUSED", paused["runId"]) not in heard and len(heard) < 10:
            [event] = await asyncio.wait_for(tabs.events("sessionEvents", stop_after=1), timeout=30)
            if event["sessionId"] == paused["sessionId"]:
                heard.append((event["kind"], event["runId"]))
    assert heard == [("CREATED", None), ("RUN_STARTED", paused["runId"]), ("RUN_PAUSED", paused["runId"])]


# --- cancel, type over, continue twice ---


async def test_cancelling_a_paused_run_stores_it_cancelled(server: RunningServer, token: str) -> None:
    _, paused = await paused_run(server, token, "CONFIRMATION")
    cancelled = (await execute(server, token, CANCEL_RUN, {"runId": paused["runId"]}))["cancelRun"]["run"]
    assert cancelled["status"] == "CANCELLED"
    assert (await run_of(server, token, paused["runId"]))["status"] == "CANCELLED"
    told = await follow(server, token, paused["runId"], after_index=paused["index"])
    assert typenames(told) == ["RunCancelled"] and told[0]["index"] == paused["index"] + 1
    answer = good_answer(paused["requirements"][0])
    assert codes(await errors_of(continue_run(server, token, paused["runId"], [answer]))) == ["RUN_NOT_PAUSED"]


async def test_a_new_message_on_a_paused_session_cancels_the_paused_run_first(
    server: RunningServer, token: str
) -> None:
    _, paused = await paused_run(server, token, "CONFIRMATION")
    variables = {"input": {"agentId": "helpdesk", "sessionId": paused["sessionId"], "message": "never mind"}}
    events = [r["runAgent"] for r in await subscribe(server, token, operation("RunAgent"), variables)]
    assert events[-1]["__typename"] == "RunCompleted" and events[-1]["content"] == "You said: never mind"
    assert (await run_of(server, token, paused["runId"]))["status"] == "CANCELLED"
    told = await follow(server, token, paused["runId"], after_index=paused["index"])
    assert [(e["__typename"], e["reason"]) for e in told] == [("RunCancelled", "A new message was sent.")]
    runs = (await execute(server, token, HISTORY, {"id": paused["sessionId"]}))["session"]["runs"]["nodes"]
    assert [r["status"] for r in runs] == ["CANCELLED", "COMPLETED"]


async def test_two_continuations_at_once_go_on_once(server: RunningServer, token: str) -> None:
    _, paused = await paused_run(server, token, "CONFIRMATION")
    answer = good_answer(paused["requirements"][0])
    outcomes = await asyncio.gather(
        *(continue_run(server, token, paused["runId"], [answer]) for _ in range(2)), return_exceptions=True
    )
    went_on = [o for o in outcomes if isinstance(o, list)]
    refused = [o for o in outcomes if not isinstance(o, list)]
    assert len(went_on) == 1 and typenames(went_on[0])[-1] == "RunCompleted", outcomes
    assert len(refused) == 1
    assert codes([dict(e) for e in getattr(refused[0], "errors", [])]) in (["SESSION_BUSY"], ["RUN_NOT_PAUSED"])
    history = (await execute(server, token, HISTORY, {"id": paused["sessionId"]}))["session"]
    assert [m["role"] for m in history["messages"]["nodes"]] == ["USER", "ASSISTANT", "TOOL", "ASSISTANT"]


async def test_a_run_taken_for_a_continuation_by_a_server_that_went_away_reads_as_lost(
    server: RunningServer, token: str
) -> None:
    _, paused = await paused_run(server, token, "CONFIRMATION")
    # What a server leaves behind that claimed the run (its tool may have run) and died before the end.
    engine = create_engine(server.settings.database_url)
    try:
        with engine.begin() as conn:
            claim = text("UPDATE agno_runs SET status = 'RUNNING' WHERE run_id = :id AND status = 'PAUSED'")
            assert conn.execute(claim, {"id": paused["runId"]}).rowcount == 1
    finally:
        engine.dispose()
    assert (await run_of(server, token, paused["runId"]))["status"] == "ERROR"
    told = await follow(server, token, paused["runId"])
    assert (told[-1]["__typename"], told[-1]["code"]) == ("RunFailed", "RUN_LOST")
    answer = good_answer(paused["requirements"][0])
    assert codes(await errors_of(continue_run(server, token, paused["runId"], [answer]))) == ["RUN_NOT_PAUSED"]


# --- transports and disconnects ---


@pytest.mark.parametrize("subprotocol", [TRANSPORT_WS, LEGACY_WS])
async def test_pause_and_continue_over_either_websocket_protocol(
    server: RunningServer, token: str, subprotocol: str
) -> None:
    _, paused = await paused_run(server, token, "USER_FEEDBACK", subprotocol=subprotocol)
    answer = good_answer(paused["requirements"][0])
    rest = await continue_run(server, token, paused["runId"], [answer], subprotocol=subprotocol)
    assert typenames(rest)[0] == "RunContinued" and typenames(rest)[-1] == "RunCompleted"


@pytest.mark.parametrize("protocol", ["sse", "multipart"])
async def test_pause_and_continue_over_http_streams(server: RunningServer, token: str, protocol: str) -> None:
    session_id = str((await create_session(server, token, "helpdesk"))["id"])
    variables = {"input": {"agentId": "helpdesk", "sessionId": session_id, "message": ASK["USER_INPUT"]}}
    events = [
        r["data"]["runAgent"]
        for r in await stream_results(open_stream(server, token, protocol, operation("RunAgent"), variables))
    ]
    paused = events[-1]
    assert paused["__typename"] == "RunPaused"
    answers = [good_answer(paused["requirements"][0])]
    continued = {"input": {"runId": paused["runId"], "answers": answers}}
    rest = [
        r["data"]["continueRun"]
        for r in await stream_results(open_stream(server, token, protocol, operation("ContinueRun"), continued))
    ]
    assert rest[0]["__typename"] == "RunContinued" and rest[-1]["__typename"] == "RunCompleted"
    assert indexes(events + rest) == list(range(len(events) + len(rest)))


@pytest.mark.parametrize(("policy", "ends"), [("CONTINUE", "COMPLETED"), ("CANCEL", "CANCELLED")])
async def test_a_client_that_leaves_during_the_continuation(
    server: RunningServer, token: str, policy: str, ends: str
) -> None:
    _, paused = await paused_run(server, token, "CONFIRMATION")
    variables = {
        "input": {"runId": paused["runId"], "answers": [good_answer(paused["requirements"][0])], "onDisconnect": policy}
    }
    async with subscription(server, token, operation("ContinueRun"), variables) as sub:
        first = await asyncio.wait_for(sub.events("continueRun", stop_after=1), timeout=30)
    assert typenames(first) == ["RunContinued"]
    rest = await follow(server, token, paused["runId"], after_index=first[0]["index"])
    assert rest[-1]["__typename"] == {"COMPLETED": "RunCompleted", "CANCELLED": "RunCancelled"}[ends]
    assert (await run_of(server, token, paused["runId"]))["status"] == ends


# --- a paused run lives in the database ---

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def shared_database(new_database_url: Callable[[str], str]) -> str:
    return new_database_url(f"pauses-{uuid.uuid4().hex[:6]}")


async def test_a_run_paused_on_one_instance_goes_on_from_another(
    shared_database: str, tmp_path: Path, user_id: str
) -> None:
    prefix = f"agql-pauses-{uuid.uuid4().hex[:8]}"
    a = start_server(server_settings(shared_database, tmp_path / "a", redis_url=REDIS_URL, redis_prefix=prefix))
    b = start_server(server_settings(shared_database, tmp_path / "b", redis_url=REDIS_URL, redis_prefix=prefix))
    try:
        token = make_token(user_id)
        events, paused = await paused_run(a, token, "USER_INPUT")
        assert (await run_of(b, token, paused["runId"]))["status"] == "PAUSED"
        rest = await continue_run(b, token, paused["runId"], [good_answer(paused["requirements"][0])])
        assert rest[0]["__typename"] == "RunContinued" and rest[-1]["__typename"] == "RunCompleted"
        assert indexes(events + rest) == list(range(len(events) + len(rest)))
        # Followed from the instance that paused it: both parts, one numbering.
        across = await follow(a, token, paused["runId"])
        assert indexes(across) == indexes(events + rest) and typenames(across)[-1] == "RunCompleted"
        again = await errors_of(continue_run(a, token, paused["runId"], [good_answer(paused["requirements"][0])]))
        assert codes(again) == ["RUN_NOT_PAUSED"]
        # Continued on both instances at once: one goes on, the other is refused, the tool runs once.
        _, twice = await paused_run(a, token, "CONFIRMATION")
        answer = [good_answer(twice["requirements"][0])]
        outcomes = await asyncio.gather(
            *(continue_run(server, token, twice["runId"], answer) for server in (a, b)), return_exceptions=True
        )
        went_on = [o for o in outcomes if isinstance(o, list)]
        assert len(went_on) == 1 and typenames(went_on[0])[-1] == "RunCompleted", outcomes
        refused = [dict(e) for o in outcomes if not isinstance(o, list) for e in getattr(o, "errors", [])]
        assert codes(refused) in (["SESSION_BUSY"], ["RUN_NOT_PAUSED"]), outcomes
        nodes = (await execute(b, token, HISTORY, {"id": twice["sessionId"]}))["session"]["messages"]["nodes"]
        assert [m["role"] for m in nodes] == ["USER", "ASSISTANT", "TOOL", "ASSISTANT"]
    finally:
        a.stop()
        b.stop()


async def test_a_paused_run_goes_on_after_a_restart_numbering_on(
    shared_database: str, tmp_path: Path, token: str
) -> None:
    before = start_server(server_settings(shared_database, tmp_path / "before"))
    try:
        events, paused = await paused_run(before, token, "CONFIRMATION")
    finally:
        before.stop()
    after = start_server(server_settings(shared_database, tmp_path / "after"))
    try:
        stored = await run_of(after, token, paused["runId"])
        assert stored["status"] == "PAUSED" and len(stored["requirements"]) == 1
        replayed = await follow(after, token, paused["runId"])
        assert typenames(replayed)[-1] == "RunPaused"
        assert [r["id"] for r in replayed[-1]["requirements"]] == [r["id"] for r in paused["requirements"]]
        rest = await continue_run(after, token, paused["runId"], [good_answer(paused["requirements"][0])])
        assert rest[0]["index"] == len(events) and typenames(rest)[-1] == "RunCompleted"
        assert indexes(rest) == list(range(len(events), len(events) + len(rest)))
    finally:
        after.stop()


async def test_a_paused_run_holds_no_slot_and_is_not_timed_out(
    shared_database: str, tmp_path: Path, user_id: str
) -> None:
    running = start_server(server_settings(shared_database, tmp_path, max_runs_per_user=1, run_timeout_seconds=1))
    try:
        token = make_token(user_id)
        _, paused = await paused_run(running, token, "EXTERNAL_EXECUTION")
        # The user's one slot is free while the run waits: another run starts and ends.
        other = await run_agent(running, token, "assistant", "hello")
        assert other[-1]["__typename"] == "RunCompleted"
        await asyncio.sleep(1.5)  # past the run timeout, which only counts while a run goes
        assert (await run_of(running, token, paused["runId"]))["status"] == "PAUSED"
        rest = await continue_run(running, token, paused["runId"], [good_answer(paused["requirements"][0])])
        assert typenames(rest)[-1] == "RunCompleted"
    finally:
        running.stop()

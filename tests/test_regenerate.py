"""Regenerating the latest answer: a new run for the same user message, the old one kept but out of the
conversation, both listed as alternatives; on SQLite and MariaDB."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.client import RUN_AGENT, execute, run_agent, subscribe
from tests.conftest import RunningServer, make_token
from tests.matrix_support import codes, create_session, errors_of, said
from tests.run_support import LONG_MESSAGE, SESSION_EVENTS, run_input, start_run, subscription, wait_for_status

REGENERATE = """
subscription Regenerate($input: RegenerateRunInput!) {
  regenerateRun(input: $input) {
    __typename runId sessionId index
    ... on RunContentDelta { delta }
    ... on RunCompleted { content }
    ... on RunFailed { message code }
    ... on RunCancelled { reason }
  }
}
"""
CONVERSATION = """
query Conversation($id: ID!) {
  session(id: $id) {
    runCount
    messages(first: 50, roles: [SYSTEM, USER, ASSISTANT, TOOL]) { totalCount nodes { id role content runId } }
    runs(first: 20) { totalCount nodes { id status input replaced alternatives { id replaced } } }
    all: runs(first: 20, includeReplaced: true) { totalCount nodes { id status replaced } }
  }
}
"""
RUN = "query Run($id: ID!) { run(id: $id) { id status input content replaced alternatives { id content } } }"


async def regenerate(
    server: RunningServer, token: str, run_id: str, instructions: str | None = None
) -> list[dict[str, Any]]:
    variables = {"input": {"runId": run_id, "instructions": instructions}}
    return [result["regenerateRun"] for result in await subscribe(server, token, REGENERATE, variables)]


async def conversation(server: RunningServer, token: str, session_id: str) -> dict[str, Any]:
    return dict((await execute(server, token, CONVERSATION, {"id": session_id}))["session"])


async def chat(server: RunningServer, token: str, *messages: str) -> tuple[str, list[str]]:
    """A new assistant session with one run per message: its id and the run ids."""
    session_id = str((await create_session(server, token))["id"])
    run_ids = []
    for message in messages:
        events = await run_agent(server, token, "assistant", message, session_id)
        run_ids.append(events[-1]["runId"])
    return session_id, run_ids


async def test_regenerating_answers_the_same_message_again_and_replaces_the_old_answer(
    server: RunningServer, user_id: str
) -> None:
    token = make_token(user_id)
    session_id, [first, second] = await chat(server, token, "hello", "how are you")
    events = await regenerate(server, token, second)
    new = events[-1]["runId"]
    assert [events[0]["__typename"], events[-1]["__typename"]] == ["RunStarted", "RunCompleted"]
    assert new not in (first, second) and {e["sessionId"] for e in events} == {session_id}
    assert events[-1]["content"] == "You said: how are you"

    seen = await conversation(server, token, session_id)
    assert seen["runCount"] == 2
    assert [r["id"] for r in seen["runs"]["nodes"]] == [first, new] and seen["runs"]["totalCount"] == 2
    assert [(r["id"], r["status"], r["replaced"]) for r in seen["all"]["nodes"]] == [
        (first, "COMPLETED", False),
        (second, "COMPLETED", True),
        (new, "COMPLETED", False),
    ]
    assert seen["all"]["totalCount"] == 3
    assert said(seen) == [
        ("USER", "hello"),
        ("ASSISTANT", "You said: hello"),
        ("USER", "how are you"),
        ("ASSISTANT", "You said: how are you"),
    ]
    assert second not in {m["runId"] for m in seen["messages"]["nodes"]}
    assert seen["messages"]["totalCount"] == len(seen["messages"]["nodes"])
    for run_id in (second, new):
        run = (await execute(server, token, RUN, {"id": run_id}))["run"]
        assert [a["id"] for a in run["alternatives"]] == [second, new]
    old = (await execute(server, token, RUN, {"id": second}))["run"]
    assert (old["status"], old["replaced"], old["input"]) == ("COMPLETED", True, "how are you")
    only = (await execute(server, token, RUN, {"id": first}))["run"]
    assert [a["id"] for a in only["alternatives"]] == [first] and only["replaced"] is False


async def test_a_second_regeneration_adds_a_third_alternative(server: RunningServer, user_id: str) -> None:
    token = make_token(user_id)
    _, [original] = await chat(server, token, "tell me something")
    second = (await regenerate(server, token, original))[-1]["runId"]
    third = (await regenerate(server, token, second))[-1]["runId"]
    run = (await execute(server, token, RUN, {"id": third}))["run"]
    assert [a["id"] for a in run["alternatives"]] == [original, second, third]
    assert run["input"] == "tell me something"


async def test_only_the_latest_run_can_be_regenerated(server: RunningServer, user_id: str) -> None:
    token = make_token(user_id)
    session_id, [first, _second] = await chat(server, token, "one", "two")
    assert codes(await errors_of(regenerate(server, token, first))) == ["NOT_LATEST_RUN"]
    replaced_by = (await regenerate(server, token, _second))[-1]["runId"]
    assert codes(await errors_of(regenerate(server, token, _second))) == ["NOT_LATEST_RUN"]
    seen = await conversation(server, token, session_id)
    assert [r["id"] for r in seen["runs"]["nodes"]] == [first, replaced_by]


async def test_someone_elses_run_is_not_found_and_a_running_one_is_busy(server: RunningServer, user_id: str) -> None:
    token = make_token(user_id)
    _, [mine] = await chat(server, token, "mine")
    intruder = make_token(f"{user_id}-intruder")
    assert codes(await errors_of(regenerate(server, intruder, mine))) == ["NOT_FOUND"]
    assert codes(await errors_of(regenerate(server, token, "no-such-run"))) == ["NOT_FOUND"]

    session_id = str((await create_session(server, token))["id"])
    head = await start_run(server, token, session_id, seen=2, message=LONG_MESSAGE)
    running = head[0]["runId"]
    assert codes(await errors_of(regenerate(server, token, running))) == ["SESSION_BUSY"]
    await wait_for_status(server, token, running, {"COMPLETED"})


async def test_two_regenerations_at_once_make_one_new_answer(server: RunningServer, user_id: str) -> None:
    token = make_token(user_id)
    session_id, [only] = await chat(server, token, "once")
    outcomes = await asyncio.gather(*(regenerate(server, token, only) for _ in range(2)), return_exceptions=True)
    went = [o for o in outcomes if isinstance(o, list)]
    refused = [dict(e) for o in outcomes if not isinstance(o, list) for e in getattr(o, "errors", [])]
    assert len(went) == 1 and went[0][-1]["__typename"] == "RunCompleted", outcomes
    assert codes(refused) in (["SESSION_BUSY"], ["NOT_LATEST_RUN"]), outcomes
    seen = await conversation(server, token, session_id)
    assert seen["all"]["totalCount"] == 2 and seen["runCount"] == 1


# --- editing a user message ---

EDIT = """
subscription Edit($input: EditMessageInput!) {
  editMessage(input: $input) {
    __typename runId sessionId index
    ... on RunCompleted { content }
  }
}
"""
TITLE = "query Title($id: ID!) { session(id: $id) { name } }"


async def edit(
    server: RunningServer, token: str, message_id: str, message: str, attachments: list[str] | None = None
) -> list[dict[str, Any]]:
    variables: dict[str, Any] = {"input": {"messageId": message_id, "message": message}}
    if attachments is not None:
        variables["input"]["attachments"] = attachments
    return [result["editMessage"] for result in await subscribe(server, token, EDIT, variables)]


def user_message_ids(seen: dict[str, Any]) -> list[str]:
    return [m["id"] for m in seen["messages"]["nodes"] if m["role"] == "USER"]


async def test_editing_a_message_replaces_its_run_and_every_later_one(server: RunningServer, user_id: str) -> None:
    token = make_token(user_id)
    session_id, [first, second, third] = await chat(server, token, "alpha", "beta", "gamma")
    seen = await conversation(server, token, session_id)
    beta = user_message_ids(seen)[1]
    events = await edit(server, token, beta, "beta, edited")
    new = events[-1]["runId"]
    assert events[-1]["__typename"] == "RunCompleted" and events[-1]["content"] == "You said: beta, edited"

    seen = await conversation(server, token, session_id)
    assert [r["id"] for r in seen["runs"]["nodes"]] == [first, new] and seen["runCount"] == 2
    assert [(r["id"], r["replaced"]) for r in seen["all"]["nodes"]] == [
        (first, False),
        (second, True),
        (third, True),
        (new, False),
    ]
    assert said(seen) == [
        ("USER", "alpha"),
        ("ASSISTANT", "You said: alpha"),
        ("USER", "beta, edited"),
        ("ASSISTANT", "You said: beta, edited"),
    ]
    assert beta not in {m["id"] for m in seen["messages"]["nodes"]}
    run = (await execute(server, token, RUN, {"id": new}))["run"]
    assert [a["id"] for a in run["alternatives"]] == [second, new]


async def test_an_unnamed_sessions_title_follows_its_edited_first_message(server: RunningServer, user_id: str) -> None:
    token = make_token(user_id)
    session_id, _ = await chat(server, token, "first words", "more words")
    assert (await execute(server, token, TITLE, {"id": session_id}))["session"]["name"] == "first words"
    first = user_message_ids(await conversation(server, token, session_id))[0]
    await edit(server, token, first, "better first words")
    assert (await execute(server, token, TITLE, {"id": session_id}))["session"]["name"] == "better first words"
    # The sidebar's list reads titles with the sessions, and gives the same.
    listed = (await execute(server, token, "query { sessions(first: 50) { nodes { id name } } }"))["sessions"]
    assert {n["id"]: n["name"] for n in listed["nodes"]}[session_id] == "better first words"


async def test_only_a_user_message_of_the_conversation_can_be_edited(server: RunningServer, user_id: str) -> None:
    token = make_token(user_id)
    session_id, _ = await chat(server, token, "keep me")
    seen = await conversation(server, token, session_id)
    by_role = {m["role"]: m["id"] for m in seen["messages"]["nodes"]}
    for role in ("ASSISTANT", "SYSTEM"):
        assert codes(await errors_of(edit(server, token, by_role[role], "nope"))) == ["BAD_USER_INPUT"]
    user = by_role["USER"]
    await edit(server, token, user, "kept, edited")
    assert codes(await errors_of(edit(server, token, user, "again"))) == ["BAD_USER_INPUT"]
    assert codes(await errors_of(edit(server, token, "no-such-message", "x"))) == ["NOT_FOUND"]
    intruder = make_token(f"{user_id}-intruder")
    latest = user_message_ids(await conversation(server, token, session_id))[0]
    assert codes(await errors_of(edit(server, intruder, latest, "mine now"))) == ["NOT_FOUND"]
    assert codes(await errors_of(edit(server, token, latest, "   "))) == ["BAD_USER_INPUT"]
    seen = await conversation(server, token, session_id)
    assert [m["content"] for m in seen["messages"]["nodes"] if m["role"] == "USER"] == ["kept, edited"]


# --- forking a session ---

FORK = """
mutation Fork($input: ForkSessionInput!) {
  forkSession(input: $input) { session { id agentId name runCount } }
}
"""


async def fork(server: RunningServer, token: str, session_id: str, **fields: Any) -> dict[str, Any]:
    result = await execute(server, token, FORK, {"input": {"sessionId": session_id, **fields}})
    return dict(result["forkSession"]["session"])


async def test_a_fork_copies_the_conversation_with_new_ids_and_goes_its_own_way(
    server: RunningServer, user_id: str
) -> None:
    token = make_token(user_id)
    session_id, run_ids = await chat(server, token, "north", "south")
    await regenerate(server, token, run_ids[-1])
    source = await conversation(server, token, session_id)
    forked = await fork(server, token, session_id)
    assert forked["id"] != session_id and forked["agentId"] == "assistant"
    assert forked["name"] == "north (copy)" and forked["runCount"] == 2
    copy = await conversation(server, token, forked["id"])
    assert said(copy) == said(source)
    assert not {m["id"] for m in copy["messages"]["nodes"]} & {m["id"] for m in source["messages"]["nodes"]}
    assert not {r["id"] for r in copy["all"]["nodes"]} & {r["id"] for r in source["all"]["nodes"]}
    assert copy["all"]["totalCount"] == 2  # the replaced answer stays behind
    # From now on each goes its own way.
    await run_agent(server, token, "assistant", "east", forked["id"])
    assert said(await conversation(server, token, session_id)) == said(source)
    assert said(await conversation(server, token, forked["id"]))[-2:] == [
        ("USER", "east"),
        ("ASSISTANT", "You said: east"),
    ]


async def test_a_fork_up_to_an_answer_holds_what_came_before_it(server: RunningServer, user_id: str) -> None:
    token = make_token(user_id)
    session_id, _ = await chat(server, token, "one", "two", "three")
    source = await conversation(server, token, session_id)
    second_answer = [m for m in source["messages"]["nodes"] if m["role"] == "ASSISTANT"][1]
    forked = await fork(server, token, session_id, upToMessageId=second_answer["id"], name="Up to two")
    assert forked["name"] == "Up to two" and forked["runCount"] == 2
    assert said(await conversation(server, token, forked["id"])) == [
        ("USER", "one"),
        ("ASSISTANT", "You said: one"),
        ("USER", "two"),
        ("ASSISTANT", "You said: two"),
    ]


async def test_a_fork_ends_at_an_answer_of_the_session_and_an_empty_one_forks_empty(
    server: RunningServer, user_id: str
) -> None:
    token = make_token(user_id)
    session_id, _ = await chat(server, token, "only")
    other_id, _ = await chat(server, token, "elsewhere")
    user_message = user_message_ids(await conversation(server, token, session_id))[0]
    elsewhere = [m["id"] for m in (await conversation(server, token, other_id))["messages"]["nodes"]]
    for up_to, code in (
        (user_message, "BAD_USER_INPUT"),
        (elsewhere[-1], "NOT_FOUND"),
        ("no-such-message", "NOT_FOUND"),
    ):
        errors = await errors_of(
            execute(server, token, FORK, {"input": {"sessionId": session_id, "upToMessageId": up_to}})
        )
        assert codes(errors) == [code], (up_to, errors)
    intruder = make_token(f"{user_id}-intruder")
    assert codes(await errors_of(execute(server, intruder, FORK, {"input": {"sessionId": session_id}}))) == [
        "NOT_FOUND"
    ]
    empty = str((await create_session(server, token, name="Blank"))["id"])
    forked = await fork(server, token, empty)
    assert (forked["name"], forked["runCount"]) == ("Blank (copy)", 0)
    assert (await conversation(server, token, forked["id"]))["messages"]["nodes"] == []


# --- a second message while one streams ---


async def send(server: RunningServer, token: str, session_id: str, message: str, if_busy: str) -> list[dict[str, Any]]:
    variables = {"input": {"agentId": "assistant", "sessionId": session_id, "message": message, "ifBusy": if_busy}}
    return [result["runAgent"] for result in await subscribe(server, token, RUN_AGENT, variables)]


async def test_interrupt_cancels_the_running_answer_then_answers_the_new_message(
    server: RunningServer, user_id: str
) -> None:
    token = make_token(user_id)
    session_id = str((await create_session(server, token))["id"])
    async with subscription(server, token, RUN_AGENT, run_input(session_id, LONG_MESSAGE)) as first:
        head = await asyncio.wait_for(first.events("runAgent", stop_after=3), timeout=30)
        assert codes(await errors_of(send(server, token, session_id, "wait", "REJECT"))) == ["SESSION_BUSY"]
        events = await send(server, token, session_id, "actually, stop", "INTERRUPT")
        rest = await asyncio.wait_for(first.events("runAgent"), timeout=30)
    assert events[0]["__typename"] == "RunStarted" and events[-1]["content"] == "You said: actually, stop"
    assert (rest[-1]["__typename"], rest[-1]["reason"]) == ("RunCancelled", "Interrupted by a new message.")
    seen = await conversation(server, token, session_id)
    assert [r["status"] for r in seen["runs"]["nodes"]] == ["CANCELLED", "COMPLETED"]
    assert [r["id"] for r in seen["runs"]["nodes"]] == [head[0]["runId"], events[0]["runId"]]
    said_now = said(seen)
    assert said_now[0] == ("USER", LONG_MESSAGE) and said_now[-2:] == [
        ("USER", "actually, stop"),
        ("ASSISTANT", "You said: actually, stop"),
    ]
    # With nothing going, INTERRUPT just starts the run (tests/test_queue.py has ENQUEUE).
    assert (await send(server, token, session_id, "and now", "INTERRUPT"))[-1]["__typename"] == "RunCompleted"


async def test_the_users_other_tabs_hear_of_forks_regenerations_and_edits(server: RunningServer, user_id: str) -> None:
    token = make_token(user_id)
    session_id, [only] = await chat(server, token, "heard")
    async with subscription(server, token, SESSION_EVENTS) as tabs:
        await asyncio.sleep(0.2)
        regenerated = (await regenerate(server, token, only))[-1]["runId"]
        message = user_message_ids(await conversation(server, token, session_id))[0]
        edited = (await edit(server, token, message, "heard, edited"))[-1]["runId"]
        forked = await fork(server, token, session_id)
        heard = await asyncio.wait_for(tabs.events("sessionEvents", stop_after=5), timeout=30)
    assert [(e["kind"], e["sessionId"], e["runId"]) for e in heard] == [
        ("RUN_STARTED", session_id, regenerated),
        ("UPDATED", session_id, regenerated),
        ("RUN_STARTED", session_id, edited),
        ("UPDATED", session_id, edited),
        ("CREATED", forked["id"], None),
    ]

"""Runs belong to the server: they outlive their socket, are resumed, cancelled, watched, one per session.

Each test runs on SQLite and MariaDB, and with the in-process broker and the Redis one (a single
instance here; tests/test_multi_instance.py puts two processes behind one Redis).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.client import RUN_AGENT, execute
from tests.conftest import RunningServer, make_token, serving_with
from tests.matrix_support import (
    DELETE_SESSION,
    RENAME_SESSION,
    assert_event_invariants,
    codes,
    create_session,
    errors_of,
    said,
    session_snapshot,
)
from tests.run_support import (
    ACTIVE_RUN,
    CANCEL_RUN,
    LONG_MESSAGE,
    SESSION_EVENTS,
    cancelled_with_its_write_held,
    check_run_told_from_store,
    content_of,
    follow,
    follow_errors,
    refusal,
    run_input,
    run_status,
    start_run,
    subscription,
    wait_for_status,
)

REDIS_URL = "redis://127.0.0.1:6379/0"
FULL_ANSWER = f"You said: {LONG_MESSAGE}"
SESSION_RUNS = """
query Runs($id: ID!) { session(id: $id) { runs(first: 10) { nodes { id status content } } } }
"""


def redis_settings() -> dict[str, Any]:
    """Settings that put a server on the local Redis, with keys of its own."""
    return {"redis_url": REDIS_URL, "redis_prefix": f"agql-test-{uuid.uuid4().hex[:8]}"}


@pytest.fixture(scope="module", params=["local", "redis"])
def lifecycle_server(
    request: pytest.FixtureRequest,
    new_database_url: Callable[[str], str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RunningServer]:
    """A server whose demo model waits 40 ms per word (a run of LONG_MESSAGE lasts about 3 s)."""
    broker = redis_settings() if request.param == "redis" else {}
    with serving_with(new_database_url, tmp_path_factory, "lifecycle", offline_delay_ms=40, **broker) as running:
        yield running


def shape(events: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """What two deliveries of one run must agree on."""
    return [(e["__typename"], e["index"], e["runId"], e.get("delta"), e.get("content")) for e in events]


async def test_a_run_goes_on_when_its_client_leaves_and_resumes_with_no_gap_or_repeat(
    lifecycle_server: RunningServer, user_id: str
) -> None:
    server, token = lifecycle_server, make_token(user_id)
    session = await create_session(server, token)
    first_part = await start_run(server, token, session["id"], seen=6)
    run_id = first_part[0]["runId"]
    await asyncio.sleep(0.3)  # the run goes on with no one listening

    rest = await follow(server, token, run_id, after_index=first_part[-1]["index"])

    seen = first_part + rest
    assert_event_invariants(seen)
    assert content_of(seen) == FULL_ANSWER
    assert rest[-1]["__typename"] == "RunCompleted" and rest[-1]["content"] == FULL_ANSWER
    stored = await wait_for_status(server, token, run_id, {"COMPLETED"})
    assert stored["content"] == FULL_ANSWER
    # Followed again from the start, the buffer tells the same run.
    assert shape(await follow(server, token, run_id)) == shape(seen)


async def test_cancel_run_ends_every_follower_with_run_cancelled_and_stores_the_partial_content(
    lifecycle_server: RunningServer, user_id: str
) -> None:
    server, token = lifecycle_server, make_token(user_id)
    session = await create_session(server, token)
    async with subscription(server, token, RUN_AGENT, run_input(session["id"])) as starter:
        head = await starter.events("runAgent", stop_after=4)
        run_id = head[0]["runId"]
        watcher = asyncio.create_task(follow(server, token, run_id, after_index=1))
        await asyncio.sleep(0.3)

        cancelled = (await execute(server, token, CANCEL_RUN, {"runId": run_id}))["cancelRun"]["run"]

        tail = await asyncio.wait_for(starter.events("runAgent"), timeout=30)
    watched = await asyncio.wait_for(watcher, timeout=30)

    assert cancelled["status"] == "CANCELLED" and cancelled["id"] == run_id
    for events in (head + tail, [*head[:2], *watched]):
        assert_event_invariants(events)
        assert events[-1]["__typename"] == "RunCancelled"
    partial = content_of(head + tail)
    assert partial and FULL_ANSWER.startswith(partial) and partial != FULL_ANSWER
    assert (await run_status(server, token, run_id)) == {**cancelled, "input": LONG_MESSAGE, "agentId": "assistant"}
    assert cancelled["content"] == partial
    # The history shows the exchange as it was cut: the message and the answer so far (a reload of the chat page).
    snapshot = await session_snapshot(server, token, session["id"])
    assert snapshot is not None
    assert said(snapshot) == [
        ("USER", LONG_MESSAGE),
        ("ASSISTANT", partial),
    ]
    # Cancelling a finished run changes nothing and returns it.
    again = (await execute(server, token, CANCEL_RUN, {"runId": run_id}))["cancelRun"]["run"]
    assert again == cancelled


async def test_a_stopped_answer_after_an_earlier_exchange_stays_in_the_history(
    lifecycle_server: RunningServer, user_id: str
) -> None:
    """What the chat page's Stop does on the second message of a conversation: the history keeps both exchanges,
    the stopped answer as far as it went."""
    server, token = lifecycle_server, make_token(user_id)
    session = await create_session(server, token)
    async with subscription(server, token, RUN_AGENT, run_input(session["id"], "hello")) as first:
        earlier = await asyncio.wait_for(first.events("runAgent"), timeout=30)
    async with subscription(server, token, RUN_AGENT, run_input(session["id"])) as second:
        head = await second.events("runAgent", stop_after=4)
        await execute(server, token, CANCEL_RUN, {"runId": head[0]["runId"]})
        tail = await asyncio.wait_for(second.events("runAgent"), timeout=30)
    assert tail[-1]["__typename"] == "RunCancelled"
    partial = content_of(head + tail)
    snapshot = await session_snapshot(server, token, session["id"])
    assert snapshot is not None
    assert said(snapshot) == [
        ("USER", "hello"),
        ("ASSISTANT", earlier[-1]["content"]),
        ("USER", LONG_MESSAGE),
        ("ASSISTANT", partial),
    ]


async def test_a_second_run_on_a_busy_session_is_session_busy_and_stores_nothing(
    lifecycle_server: RunningServer, user_id: str
) -> None:
    server, token = lifecycle_server, make_token(user_id)
    session = await create_session(server, token)
    other = await create_session(server, token)
    async with subscription(server, token, RUN_AGENT, run_input(session["id"])) as first:
        head = await first.events("runAgent", stop_after=2)
        async with subscription(server, token, RUN_AGENT, run_input(session["id"], "me too")) as second:
            refused = await second.next()
        # Another session runs alongside.
        async with subscription(server, token, RUN_AGENT, run_input(other["id"], "in parallel")) as parallel:
            parallel_events = await asyncio.wait_for(parallel.events("runAgent"), timeout=30)
        tail = await asyncio.wait_for(first.events("runAgent"), timeout=30)

    assert codes(refusal(refused)) == ["SESSION_BUSY"]
    assert parallel_events[-1]["content"] == "You said: in parallel"
    assert_event_invariants(head + tail)
    snapshot = await session_snapshot(server, token, session["id"])
    assert snapshot is not None
    assert [run["input"] for run in snapshot["runs"]["nodes"]] == [LONG_MESSAGE]


async def test_of_many_concurrent_runs_on_one_session_exactly_one_runs_and_keeps_every_message(
    lifecycle_server: RunningServer, user_id: str
) -> None:
    server, token = lifecycle_server, make_token(user_id)
    session = await create_session(server, token)

    async def attempt(n: int) -> dict[str, Any]:
        async with subscription(server, token, RUN_AGENT, run_input(session["id"], f"attempt {n}")) as sub:
            first = await sub.next()
            if first["payload"].get("errors"):
                return {"refused": codes(refusal(first))}
            rest = await asyncio.wait_for(sub.events("runAgent"), timeout=30)
            return {"events": [first["payload"]["data"]["runAgent"], *rest]}

    outcomes = await asyncio.gather(*(attempt(n) for n in range(8)))

    ran = [o["events"] for o in outcomes if "events" in o]
    refused = [o["refused"] for o in outcomes if "refused" in o]
    assert len(ran) == 1 and refused == [["SESSION_BUSY"]] * 7
    assert_event_invariants(ran[0])
    snapshot = await session_snapshot(server, token, session["id"])
    assert snapshot is not None
    [run] = snapshot["runs"]["nodes"]
    assert run["status"] == "COMPLETED" and run["content"] == ran[0][-1]["content"]
    assert said(snapshot) == [
        ("USER", run["input"]),
        ("ASSISTANT", run["content"]),
    ]


async def test_active_run_and_run_show_running_while_it_goes_then_the_stored_run(
    lifecycle_server: RunningServer, user_id: str
) -> None:
    server, token = lifecycle_server, make_token(user_id)
    session = await create_session(server, token)
    idle = await execute(server, token, ACTIVE_RUN, {"id": session["id"]})
    assert idle["session"]["activeRun"] is None

    async with subscription(server, token, RUN_AGENT, run_input(session["id"])) as sub:
        head = await sub.events("runAgent", stop_after=2)
        run_id = head[0]["runId"]
        busy = await execute(server, token, ACTIVE_RUN, {"id": session["id"]})
        running = await run_status(server, token, run_id)
        await asyncio.wait_for(sub.events("runAgent"), timeout=30)

    assert busy["session"]["activeRun"] == {"id": run_id, "status": "RUNNING"}
    assert running == {
        "id": run_id,
        "status": "RUNNING",
        "input": LONG_MESSAGE,
        "content": None,
        "sessionId": session["id"],
        "agentId": "assistant",
    }
    after = await execute(server, token, ACTIVE_RUN, {"id": session["id"]})
    assert after["session"]["activeRun"] is None
    assert (await run_status(server, token, run_id)) == {**running, "status": "COMPLETED", "content": FULL_ANSWER}


async def test_session_events_tell_the_users_other_tabs_and_no_one_else(
    lifecycle_server: RunningServer, user_id: str
) -> None:
    server, token = lifecycle_server, make_token(user_id)
    stranger = make_token(f"stranger-{uuid.uuid4().hex[:8]}")
    async with (
        subscription(server, token, SESSION_EVENTS) as tab,
        subscription(server, stranger, SESSION_EVENTS) as strangers_tab,
    ):
        await asyncio.sleep(0.3)  # both subscriptions are listening
        session = await create_session(server, token)
        await execute(server, token, RENAME_SESSION, {"input": {"sessionId": session["id"], "name": "Groceries"}})
        async with subscription(server, token, RUN_AGENT, run_input(session["id"], "milk")) as run:
            run_events = await asyncio.wait_for(run.events("runAgent"), timeout=30)
        await execute(server, token, DELETE_SESSION, {"input": {"sessionId": session["id"]}})
        seen = await asyncio.wait_for(tab.events("sessionEvents", stop_after=5), timeout=30)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(strangers_tab.next(), timeout=1.0)

    run_id = run_events[0]["runId"]
    assert [(e["kind"], e["sessionId"], e["runId"]) for e in seen] == [
        ("CREATED", session["id"], None),
        ("RENAMED", session["id"], None),
        ("RUN_STARTED", session["id"], run_id),
        ("UPDATED", session["id"], run_id),
        ("DELETED", session["id"], None),
    ]
    assert seen[1]["session"] == {"id": session["id"], "name": "Groceries"}
    assert seen[4]["session"] is None


async def test_someone_elses_run_cannot_be_followed_cancelled_or_read(
    lifecycle_server: RunningServer, user_id: str
) -> None:
    server, owner = lifecycle_server, make_token(user_id)
    intruder = make_token(f"intruder-{uuid.uuid4().hex[:8]}")
    async with subscription(server, owner, RUN_AGENT, run_input(None)) as sub:
        head = await sub.events("runAgent", stop_after=2)
        run_id = head[0]["runId"]
        while_running = [
            codes(await follow_errors(server, intruder, run_id)),
            codes(await errors_of(execute(server, intruder, CANCEL_RUN, {"runId": run_id}))),
            await run_status(server, intruder, run_id),
        ]
        tail = await asyncio.wait_for(sub.events("runAgent"), timeout=30)

    assert tail[-1]["__typename"] == "RunCompleted"  # the owner's run was not disturbed
    after = [
        codes(await follow_errors(server, intruder, run_id)),
        codes(await errors_of(execute(server, intruder, CANCEL_RUN, {"runId": run_id}))),
        await run_status(server, intruder, run_id),
    ]
    assert while_running == after == [["NOT_FOUND"], ["NOT_FOUND"], None]


@pytest.mark.parametrize(
    ("variables", "code"),
    [
        ({"runId": "no-such-run"}, "NOT_FOUND"),
        ({"runId": "x" * 500}, "BAD_USER_INPUT"),
        ({"runId": "r", "afterIndex": -2}, "BAD_USER_INPUT"),
    ],
    ids=["unknown", "huge-id", "negative-index"],
)
async def test_run_events_refuses_bad_input_with_a_code(
    lifecycle_server: RunningServer, user_id: str, variables: dict[str, Any], code: str
) -> None:
    errors = await follow_errors(lifecycle_server, make_token(user_id), variables["runId"], variables.get("afterIndex"))
    assert codes(errors) == [code]


# Limits, each on a server of its own (in-process broker).


@pytest.fixture(scope="module")
def forgetful_server(
    new_database_url: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    """Keeps a run's events no time after its end, at most 8 of them, and lets a user run two at once."""
    with serving_with(
        new_database_url,
        tmp_path_factory,
        "forgetful",
        offline_delay_ms=40,
        run_events_retention_seconds=0,
        run_events_max=8,
        max_runs_per_user=2,
    ) as running:
        yield running


async def test_after_the_buffer_expired_run_events_tells_the_run_from_the_store(
    forgetful_server: RunningServer, user_id: str
) -> None:
    await check_run_told_from_store(forgetful_server, forgetful_server, make_token(user_id))


async def test_resuming_before_the_oldest_held_event_of_a_long_run_is_events_expired(
    forgetful_server: RunningServer, user_id: str
) -> None:
    server, token = forgetful_server, make_token(user_id)
    async with subscription(server, token, RUN_AGENT, run_input(None)) as sub:
        head = await sub.events("runAgent", stop_after=20)
        errors = await follow_errors(server, token, head[0]["runId"], after_index=0)
        latest = await follow(server, token, head[0]["runId"], after_index=head[-1]["index"])
    assert codes(errors) == ["EVENTS_EXPIRED"]
    assert errors[0]["extensions"]["firstAvailableIndex"] > 1
    assert_event_invariants(head + latest)


async def test_a_users_runs_at_once_are_capped_with_rate_limited(forgetful_server: RunningServer, user_id: str) -> None:
    server, token = forgetful_server, make_token(user_id)
    async with (
        subscription(server, token, RUN_AGENT, run_input(None)) as one,
        subscription(server, token, RUN_AGENT, run_input(None)) as two,
    ):
        await one.events("runAgent", stop_after=1)
        await two.events("runAgent", stop_after=1)
        async with subscription(server, token, RUN_AGENT, run_input(None, "three")) as three:
            refused = await three.next()
        others = make_token(f"other-{uuid.uuid4().hex[:8]}")
        async with subscription(server, others, RUN_AGENT, run_input(None, "someone else")) as elsewhere:
            someone_else = await asyncio.wait_for(elsewhere.events("runAgent"), timeout=30)
    assert codes(refusal(refused)) == ["RATE_LIMITED"]
    assert someone_else[-1]["__typename"] == "RunCompleted"
    # The refused run left no session behind: only the two that ran are listed.
    listed = await execute(server, token, "{ sessions(first: 10) { totalCount } }")
    assert listed["sessions"]["totalCount"] == 2


@pytest.fixture(scope="module")
def hasty_server(
    new_database_url: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    """Ends any run after one second."""
    with serving_with(
        new_database_url, tmp_path_factory, "hasty", offline_delay_ms=40, run_timeout_seconds=1
    ) as running:
        yield running


async def test_a_run_that_takes_too_long_fails_with_run_timeout_and_is_stored_failed(
    hasty_server: RunningServer, user_id: str
) -> None:
    server, token = hasty_server, make_token(user_id)
    head = await start_run(server, token, None, seen=2)  # and nobody follows it any more
    run_id = head[0]["runId"]
    stored = await wait_for_status(server, token, run_id, {"ERROR", "COMPLETED", "CANCELLED"})
    events = await follow(server, token, run_id)
    assert stored["status"] == "ERROR"
    assert stored["content"] and FULL_ANSWER.startswith(stored["content"]) and stored["content"] != FULL_ANSWER
    assert_event_invariants(events)
    assert (events[-1]["__typename"], events[-1]["code"]) == ("RunFailed", "RUN_TIMEOUT")


CANCEL_GRACE_SECONDS = 1.0


@pytest.fixture(scope="module")
def impatient_server(
    new_database_url: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    """Stops a cancelled run's task one second after asking Agno to stop it."""
    with serving_with(
        new_database_url, tmp_path_factory, "impatient", offline_delay_ms=40, cancel_grace_seconds=CANCEL_GRACE_SECONDS
    ) as running:
        yield running


async def test_a_cancelled_run_is_stored_even_when_its_write_waits_past_the_cancel_grace(
    impatient_server: RunningServer, user_id: str
) -> None:
    """Agno writes a cancelled run once it has stopped it. If the database makes that write wait longer than the
    grace the server gives Agno to stop, the write must still finish: cut off, the run would be lost."""
    server, token = impatient_server, make_token(user_id)
    session = await create_session(server, token)
    async with subscription(server, token, RUN_AGENT, run_input(session["id"])) as starter:
        head = await starter.events("runAgent", stop_after=4)
        run_id = head[0]["runId"]
        async with cancelled_with_its_write_held(server, token, run_id) as held:
            # Past the grace, with the write still waiting on the lock.
            await asyncio.sleep(CANCEL_GRACE_SECONDS * 3)
            assert held.writes_waiting() >= 1, "the cancelled run's write was cut off"
            assert not held.cancelling.done()
        tail = await asyncio.wait_for(starter.events("runAgent"), timeout=30)
    cancelled = (await asyncio.wait_for(held.cancelling, timeout=30))["cancelRun"]["run"]

    assert_event_invariants(head + tail)
    assert tail[-1]["__typename"] == "RunCancelled"
    partial = content_of(head + tail)
    assert partial and FULL_ANSWER.startswith(partial) and partial != FULL_ANSWER
    assert cancelled["status"] == "CANCELLED" and cancelled["content"] == partial
    stored = await execute(server, token, SESSION_RUNS, {"id": session["id"]})
    assert stored["session"]["runs"]["nodes"] == [{"id": run_id, "status": "CANCELLED", "content": partial}]

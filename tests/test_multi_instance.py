"""Several server processes behind one Redis and one database: a run started on one instance is
resumed, watched and cancelled from another, and one session still runs one run at a time."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.client import RUN_AGENT, execute
from tests.matrix_support import (
    DELETE_SESSION,
    RENAME_SESSION,
    assert_event_invariants,
    codes,
    create_session,
    session_snapshot,
)
from tests.process_support import ServedProcess, serve_env, serving_process
from tests.run_support import (
    CANCEL_RUN,
    LONG_MESSAGE,
    SESSION_EVENTS,
    content_of,
    follow,
    refusal,
    run_input,
    start_run,
    subscription,
    wait_for_status,
)

REDIS_URL = "redis://127.0.0.1:6379/0"
FULL_ANSWER = f"You said: {LONG_MESSAGE}"


def instance_env(folder: Path, database_url: str, prefix: str, **settings: str) -> dict[str, str]:
    return serve_env(
        folder,
        database_url,
        redis_url=REDIS_URL,
        redis_prefix=prefix,
        offline_delay_ms="40",
        **settings,
    )


@pytest.fixture(scope="module")
def instances(
    new_database_url: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ServedProcess, ServedProcess]]:
    """Two `serve` processes on two ports, sharing the database and Redis."""
    database_url = new_database_url("instances")
    prefix = f"agql-test-{uuid.uuid4().hex[:8]}"
    folder = tmp_path_factory.mktemp("instances")
    with (
        serving_process(folder / "a", instance_env(folder, database_url, prefix)) as a,
        serving_process(folder / "b", instance_env(folder, database_url, prefix)) as b,
    ):
        yield a, b


async def act_during_a_run(
    runs_on: ServedProcess, token: str, session_id: str, action: Callable[[str], Awaitable[Any]]
) -> tuple[Any, list[dict[str, Any]]]:
    """Start a run on one instance, call `action(run_id)` once it streams, and read the run to its end:
    what the action returned, and every event the starter saw."""
    async with subscription(runs_on, token, RUN_AGENT, run_input(session_id)) as run:
        head = await run.events("runAgent", stop_after=2)
        outcome = await action(head[0]["runId"])
        tail = await asyncio.wait_for(run.events("runAgent"), timeout=30)
    return outcome, head + tail


async def test_a_run_started_on_one_instance_is_followed_refused_and_cancelled_from_another(
    instances: tuple[ServedProcess, ServedProcess], token: str
) -> None:
    a, b = instances
    session = await create_session(a, token)

    async def from_b(run_id: str) -> tuple[list[dict[str, Any]], asyncio.Task[Any], dict[str, Any]]:
        async with subscription(b, token, RUN_AGENT, run_input(session["id"], "me too")) as second:
            busy = refusal(await second.next())
        watcher = asyncio.create_task(follow(b, token, run_id, after_index=1))
        await asyncio.sleep(0.5)
        cancelled = (await execute(b, token, CANCEL_RUN, {"runId": run_id}))["cancelRun"]["run"]
        return busy, watcher, cancelled

    (busy, watcher, cancelled), seen_on_a = await act_during_a_run(a, token, session["id"], from_b)
    watched = await asyncio.wait_for(watcher, timeout=30)

    assert codes(busy) == ["SESSION_BUSY"]
    assert cancelled["status"] == "CANCELLED"
    assert_event_invariants(seen_on_a)
    assert seen_on_a[-1]["__typename"] == "RunCancelled"
    assert [e["index"] for e in watched] == [e["index"] for e in seen_on_a[2:]]
    assert content_of(seen_on_a[:2] + watched) == content_of(seen_on_a) == cancelled["content"]
    # Instance A reads the run as stored, as B returned it.
    again = await wait_for_status(a, token, cancelled["id"], {"CANCELLED"})
    assert again["content"] == cancelled["content"]


async def test_a_run_whose_client_left_instance_a_is_resumed_on_instance_b(
    instances: tuple[ServedProcess, ServedProcess], token: str
) -> None:
    a, b = instances
    head = await start_run(a, token, None, seen=5)
    rest = await follow(b, token, head[0]["runId"], after_index=head[-1]["index"])

    assert_event_invariants(head + rest)
    assert content_of(head + rest) == FULL_ANSWER
    stored = await wait_for_status(b, token, head[0]["runId"], {"COMPLETED"})
    assert stored["content"] == FULL_ANSWER


FOLLOWERS_PER_RUN = 45  # x 3 runs: more followers on one instance than its Redis pool has connections (100)


async def test_more_followers_on_another_instance_than_redis_connections_all_see_every_event(
    instances: tuple[ServedProcess, ServedProcess], token: str
) -> None:
    a, b = instances
    heads = [await start_run(a, token, None, seen=2) for _ in range(3)]
    followers = [
        asyncio.create_task(follow(b, token, head[0]["runId"], after_index=head[-1]["index"]))
        for head in heads
        for _ in range(FOLLOWERS_PER_RUN)
    ]
    seen = await asyncio.gather(*followers)

    for number, rest in enumerate(seen):
        head = heads[number // FOLLOWERS_PER_RUN]
        assert_event_invariants(head + rest)
        assert content_of(head + rest) == FULL_ANSWER, number


async def test_session_events_of_one_instance_reach_a_tab_on_the_other(
    instances: tuple[ServedProcess, ServedProcess], token: str
) -> None:
    a, b = instances
    async with subscription(b, token, SESSION_EVENTS) as tab:
        await asyncio.sleep(0.3)
        session = await create_session(a, token)
        async with subscription(a, token, RUN_AGENT, run_input(session["id"], "hello")) as run:
            events = await asyncio.wait_for(run.events("runAgent"), timeout=30)
        seen = await asyncio.wait_for(tab.events("sessionEvents", stop_after=3), timeout=30)
    assert [(e["kind"], e["runId"]) for e in seen] == [
        ("CREATED", None),
        ("RUN_STARTED", events[0]["runId"]),
        ("UPDATED", events[0]["runId"]),
    ]


async def test_a_rename_on_one_instance_during_a_run_on_the_other_is_kept(
    instances: tuple[ServedProcess, ServedProcess], token: str
) -> None:
    a, b = instances
    session = await create_session(a, token)
    rename = {"input": {"sessionId": session["id"], "name": "Renamed on B"}}
    _, events = await act_during_a_run(
        a, token, session["id"], lambda _run_id: execute(b, token, RENAME_SESSION, rename)
    )
    assert events[-1]["__typename"] == "RunCompleted"
    for served in (a, b):
        snapshot = await session_snapshot(served, token, session["id"])
        assert snapshot is not None and snapshot["name"] == "Renamed on B"


async def test_deleting_a_session_on_one_instance_stops_its_run_on_the_other(
    instances: tuple[ServedProcess, ServedProcess], token: str
) -> None:
    a, b = instances
    session = await create_session(a, token)
    delete = {"input": {"sessionId": session["id"]}}
    deleted, events = await act_during_a_run(
        a, token, session["id"], lambda _run_id: execute(b, token, DELETE_SESSION, delete)
    )
    assert deleted["deleteSession"]["deletedSessionId"] == session["id"]
    assert events[-1]["__typename"] == "RunCancelled"
    await asyncio.sleep(0.5)
    assert await session_snapshot(a, token, session["id"]) is None
    assert await session_snapshot(b, token, session["id"]) is None


async def test_when_the_instance_running_a_run_dies_followers_elsewhere_are_told_and_the_session_frees(
    new_database_url: Callable[[str], str], tmp_path: Path, token: str
) -> None:
    database_url = new_database_url("dying")
    env = instance_env(tmp_path, database_url, f"agql-test-{uuid.uuid4().hex[:8]}", run_lease_seconds="2")
    with serving_process(tmp_path / "a", env) as a, serving_process(tmp_path / "b", env) as b:
        session = await create_session(a, token)
        head = await start_run(a, token, session["id"], seen=3)
        watcher = asyncio.create_task(follow(b, token, head[0]["runId"], after_index=head[-1]["index"]))
        await asyncio.sleep(0.3)
        a.process.kill()
        watched = await asyncio.wait_for(watcher, timeout=30)
        # Once the lease has lapsed, the session takes a new run.
        after = None
        for _ in range(50):
            async with subscription(b, token, RUN_AGENT, run_input(session["id"], "again")) as retry:
                first = await retry.next()
                if not first["payload"].get("errors"):
                    after = [first["payload"]["data"]["runAgent"], *await retry.events("runAgent")]
                    break
            await asyncio.sleep(0.2)
    lost = watched[-1]
    assert (lost["__typename"], lost["code"], lost["sessionId"]) == ("RunFailed", "RUN_LOST", session["id"])
    assert_event_invariants(head + watched)
    assert after is not None and after[-1]["content"] == "You said: again"


def test_serve_with_workers_and_redis_shares_runs_between_workers(
    new_database_url: Callable[[str], str], tmp_path: Path, token: str
) -> None:
    env = instance_env(tmp_path, new_database_url("workers"), f"agql-test-{uuid.uuid4().hex[:8]}")
    env["AGNO_GRAPHQL_OFFLINE_DELAY_MS"] = "2"

    async def journey(served: ServedProcess) -> None:
        # Each new connection may land on either worker: follow the run from several.
        head = await start_run(served, token, None, seen=2, message="across workers")
        for _ in range(4):
            events = await follow(served, token, head[0]["runId"])
            assert events[-1]["content"] == "You said: across workers"
            assert_event_invariants(events)

    with serving_process(tmp_path, env, ["--workers", "2"]) as served:
        asyncio.run(journey(served))

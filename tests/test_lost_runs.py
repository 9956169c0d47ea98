"""Nothing the user sent is lost when a server dies mid-run: real `serve` processes killed with SIGKILL, on both
databases, with one instance (the next start settles the run) and with two over Redis (the other instance does,
with what the model had said from the run's event stream)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.client import RUN_AGENT, execute
from tests.matrix_support import assert_event_invariants, create_session
from tests.process_support import ServedProcess, serve_env, serving_process
from tests.run_support import LONG_MESSAGE, follow, run_input, start_run, subscription
from tests.test_regenerate import regenerate

REDIS_URL = "redis://127.0.0.1:6379/0"

SESSION = """
query Session($id: ID!) {
  session(id: $id) {
    runCount
    activeRun { id }
    runs(first: 10) { nodes { id status input content } }
    messages(first: 20) { nodes { role content runId } }
  }
}
"""


def single_env(folder: Path, database_url: str) -> dict[str, str]:
    return serve_env(folder, database_url, offline_delay_ms="40")


def shared_env(folder: Path, database_url: str) -> dict[str, str]:
    """Two instances' settings: one Redis (under a prefix of their own) and short run leases."""
    return serve_env(
        folder,
        database_url,
        offline_delay_ms="40",
        redis_url=REDIS_URL,
        redis_prefix=f"agql-test-{uuid.uuid4().hex[:8]}",
        run_lease_seconds="2",
    )


async def session_of(served: ServedProcess, token: str, session_id: str) -> dict[str, Any]:
    return dict((await execute(served, token, SESSION, {"id": session_id}))["session"])


async def a_run_going(served: ServedProcess, token: str) -> tuple[str, list[dict[str, Any]]]:
    """A new session with a run started in it: the session's id and the first few events of the run."""
    session_id = str((await create_session(served, token))["id"])
    return session_id, await start_run(served, token, session_id, seen=4)


async def stored_run_once_settled(served: ServedProcess, token: str, session_id: str, run_id: str) -> dict[str, Any]:
    """The run as the session's run list has it once it is no longer RUNNING (the list only reads, so what
    changed it is the server's own looking for lost runs), polled for a bounded while."""
    run: dict[str, Any] = {}
    for _ in range(150):
        runs = (await session_of(served, token, session_id))["runs"]["nodes"]
        run = next(r for r in runs if r["id"] == run_id)
        if run["status"] != "RUNNING":
            return run
        await asyncio.sleep(0.2)
    raise AssertionError(f"run {run_id} still RUNNING: {run}")


async def answered_again(served: ServedProcess, token: str, session_id: str, run_id: str) -> None:
    """The user can regenerate the lost run (it is the latest), and the session takes new messages."""
    events = await regenerate(served, token, run_id)
    assert (events[-1]["__typename"], events[-1]["content"]) == ("RunCompleted", f"You said: {LONG_MESSAGE}")
    await takes_new_messages(served, token, session_id)


async def takes_new_messages(served: ServedProcess, token: str, session_id: str) -> None:
    """A new message in the session is answered at once."""
    async with subscription(served, token, RUN_AGENT, run_input(session_id, "after the crash")) as run:
        after = await asyncio.wait_for(run.events("runAgent"), timeout=30)
    assert after[-1]["content"] == "You said: after the crash"


async def test_a_run_whose_only_server_is_killed_is_stored_failed_with_the_users_message_by_the_next_start(
    new_database_url: Callable[[str], str], tmp_path: Path, token: str
) -> None:
    env = single_env(tmp_path, new_database_url("killed-alone"))
    with serving_process(tmp_path / "first", env) as first:
        session_id, head = await a_run_going(first, token)
        first.kill()
    run_id = head[0]["runId"]
    with serving_process(tmp_path / "second", env) as second:
        run = await stored_run_once_settled(second, token, session_id, run_id)
        assert (run["status"], run["input"]) == ("ERROR", LONG_MESSAGE)
        seen = await session_of(second, token, session_id)
        assert seen["activeRun"] is None and seen["runCount"] == 1
        # The message is kept; what the model had said was only in the dead process.
        assert [(m["role"], m["content"], m["runId"]) for m in seen["messages"]["nodes"]] == [
            ("USER", LONG_MESSAGE, run_id)
        ]
        told = await follow(second, token, run_id)
        assert [(e["__typename"], e.get("code")) for e in told] == [("RunStarted", None), ("RunFailed", "RUN_LOST")]
        await answered_again(second, token, session_id, run_id)


async def test_when_one_of_two_instances_is_killed_the_other_stores_its_run_failed_with_what_it_had_said(
    new_database_url: Callable[[str], str], tmp_path: Path, token: str
) -> None:
    env = shared_env(tmp_path, new_database_url("killed-shared"))
    with serving_process(tmp_path / "a", env) as a, serving_process(tmp_path / "b", env) as b:
        session_id, head = await a_run_going(a, token)
        run_id = head[0]["runId"]
        watcher = asyncio.create_task(follow(b, token, run_id, after_index=head[-1]["index"]))
        await asyncio.sleep(0.5)
        a.kill()
        watched = await asyncio.wait_for(watcher, timeout=60)
        assert (watched[-1]["__typename"], watched[-1]["code"]) == ("RunFailed", "RUN_LOST")
        assert_event_invariants(head + watched)
        streamed = "".join(e.get("delta") or "" for e in head + watched)

        run = await stored_run_once_settled(b, token, session_id, run_id)
        assert run["status"] == "ERROR" and run["content"]
        assert f"You said: {LONG_MESSAGE}".startswith(run["content"]) and run["content"].startswith(streamed)
        seen = await session_of(b, token, session_id)
        assert seen["activeRun"] is None
        assert [(m["role"], m["content"]) for m in seen["messages"]["nodes"]] == [
            ("USER", LONG_MESSAGE),
            ("ASSISTANT", run["content"]),
        ]
        # Followed again later, the run tells the same end, numbered on from what it had said.
        again = await follow(b, token, run_id)
        assert (again[-1]["__typename"], again[-1]["code"]) == ("RunFailed", "RUN_LOST")
        assert_event_invariants(again)
        await answered_again(b, token, session_id, run_id)


def enqueue_input(session_id: str, message: str) -> dict[str, Any]:
    return {"input": {"agentId": "assistant", "sessionId": session_id, "message": message, "ifBusy": "ENQUEUE"}}


async def queued_behind(served: ServedProcess, token: str, session_id: str, message: str) -> str:
    """Send a message with ifBusy: ENQUEUE while the session's run goes; the queued run's id (the connection
    drops: the run stays in line)."""
    async with subscription(served, token, RUN_AGENT, enqueue_input(session_id, message)) as queued:
        told = await asyncio.wait_for(queued.events("runAgent", stop_after=1), timeout=30)
    assert told[0]["__typename"] == "RunQueued"
    return str(told[0]["runId"])


async def test_runs_waiting_in_line_on_a_killed_server_are_stored_lost_with_their_message_by_the_next_start(
    new_database_url: Callable[[str], str], tmp_path: Path, token: str
) -> None:
    env = single_env(tmp_path, new_database_url("killed-line"))
    with serving_process(tmp_path / "first", env) as first:
        session_id, head = await a_run_going(first, token)
        waiting = await queued_behind(first, token, session_id, "and then?")
        first.kill()
    with serving_process(tmp_path / "second", env) as second:
        run = await stored_run_once_settled(second, token, session_id, head[0]["runId"])
        assert run["status"] == "ERROR"
        lost = await stored_run_once_settled(second, token, session_id, waiting)
        assert (lost["status"], lost["input"]) == ("ERROR", "and then?")
        told = await follow(second, token, waiting)
        assert (told[-1]["__typename"], told[-1]["code"]) == ("RunFailed", "RUN_LOST")
        seen = await session_of(second, token, session_id)
        assert [m["content"] for m in seen["messages"]["nodes"]] == [LONG_MESSAGE, "and then?"]


async def test_runs_waiting_in_line_on_an_instance_killed_go_with_it_and_the_other_instance_says_so(
    new_database_url: Callable[[str], str], tmp_path: Path, token: str
) -> None:
    env = shared_env(tmp_path, new_database_url("killed-shared-line"))
    with serving_process(tmp_path / "a", env) as a, serving_process(tmp_path / "b", env) as b:
        session_id, head = await a_run_going(a, token)
        waiting = await queued_behind(a, token, session_id, "and then?")
        watcher = asyncio.create_task(follow(b, token, waiting))
        a.kill()
        watched = await asyncio.wait_for(watcher, timeout=60)
        assert [(e["__typename"], e["code"]) for e in watched] == [("RunFailed", "RUN_LOST")]
        run = await stored_run_once_settled(b, token, session_id, head[0]["runId"])
        lost = await stored_run_once_settled(b, token, session_id, waiting)
        assert (run["status"], lost["status"], lost["input"]) == ("ERROR", "ERROR", "and then?")
        seen = await session_of(b, token, session_id)
        assert seen["activeRun"] is None
        assert [m["content"] for m in seen["messages"]["nodes"]][-1] == "and then?"
        await takes_new_messages(b, token, session_id)

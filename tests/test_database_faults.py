"""The database goes away: a private MariaDB (tests/mariadb_server.py) is stopped and started under a real
server, at startup and in the middle of traffic and of running runs.

What a user sees: while the database is down, requests fail with DB_UNAVAILABLE (never an internal error,
never a hang); afterwards everything works without a restart; every run that was going ends either with
RunCompleted and is stored whole, or with RunFailed DB_UNAVAILABLE and is not stored at all. The tables are
read directly to check that nothing is half-written.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from agno.agent import Agent
from agno.run.agent import RunEvent

from agno_graphql.agents.offline import OfflineModel
from agno_graphql.db.database import Database
from agno_graphql.db.sessions import create_session
from tests.auth_support import VIEWER, error_codes
from tests.client import RUN_AGENT, execute, operation, post
from tests.conftest import REQUIRE_MYSQL, RunningServer, make_token, server_settings, start_server
from tests.mariadb_server import MariaDbServer, available, private_mariadb
from tests.run_support import LONG_MESSAGE, follow, refusal, run_input, subscription

# Where MySQL is required (CI), a missing mariadbd is a failure, not a skip.
pytestmark = pytest.mark.skipif(
    available() is not None and not REQUIRE_MYSQL, reason=f"no private MariaDB here: {available()}"
)

SESSIONS = "query Mine { sessions(first: 20) { totalCount nodes { id messages(first: 50) { totalCount } } } }"
NEW_SESSION = {"input": {"agentId": "assistant"}}
READY_ATTEMPTS = 300  # x 0.1 s
EVENTS_BEFORE_OUTAGE = 4
# A run streams its reply (about 80 words) for about a second: it is mid-flight when the database stops.
OFFLINE_DELAY_MS = 15
# Once every run has streamed its whole reply with the database down, the outage goes on this long, so Agno
# has tried (and failed) to store each run before the database is back.
AFTER_STREAMED_SECONDS = 0.5
STREAMED_ATTEMPTS = 600  # x 0.05 s


@pytest.fixture(scope="module")
def mariadb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MariaDbServer]:
    with private_mariadb(tmp_path_factory.mktemp("mariadb")) as server:
        yield server


@pytest.fixture
def database_url(mariadb: MariaDbServer) -> Iterator[str]:
    if not mariadb.running:
        mariadb.start()
    name = f"faults_{uuid.uuid4().hex[:10]}"
    yield mariadb.create_database(name)
    if not mariadb.running:
        mariadb.start()


@asynccontextmanager
async def serving(database_url: str, state_dir: Path, **overrides: Any) -> AsyncIterator[RunningServer]:
    running = start_server(server_settings(database_url, state_dir, **overrides))
    try:
        yield running
    finally:
        await asyncio.to_thread(running.stop)


async def _status(server: RunningServer, path: str) -> int:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
        return (await client.get(path)).status_code


async def _wait_ready(server: RunningServer) -> None:
    for _ in range(READY_ATTEMPTS):
        if await _status(server, "/readyz") == 200:
            return
        await asyncio.sleep(0.1)
    pytest.fail("/readyz never became 200 after the database came back")


class Run:
    """One run over its own websocket: every event it streams, and when it is mid-flight."""

    def __init__(self, server: RunningServer, token: str, session_id: str | None, message: str) -> None:
        self.message = message
        self.events: list[dict[str, Any]] = []
        self.errors: list[dict[str, Any]] = []
        self.mid_flight = asyncio.Event()
        self.task = asyncio.create_task(self._follow(server, token, session_id))

    async def _follow(self, server: RunningServer, token: str, session_id: str | None) -> None:
        async with subscription(server, token, RUN_AGENT, run_input(session_id, self.message)) as sub:
            while True:
                message = await sub.next()
                if message["type"] == "complete":
                    return
                if message["type"] == "error" or message["payload"].get("errors"):
                    self.errors = refusal(message)
                    self.mid_flight.set()
                    return
                self.events.append(message["payload"]["data"]["runAgent"])
                if len(self.events) >= EVENTS_BEFORE_OUTAGE:
                    self.mid_flight.set()

    @property
    def terminal(self) -> dict[str, Any]:
        assert not self.errors, self.errors
        ends = [e for e in self.events if e["__typename"] in {"RunCompleted", "RunFailed", "RunCancelled"}]
        assert len(ends) == 1 and ends[0] is self.events[-1], self.events
        return ends[0]

    @property
    def run_id(self) -> str:
        return str(self.events[0]["runId"])

    @property
    def session_id(self) -> str:
        return str(self.events[0]["sessionId"])

    @property
    def streamed(self) -> str:
        return "".join(e["delta"] for e in self.events if e["__typename"] == "RunContentDelta")

    @property
    def whole_reply(self) -> str:
        """What the offline model answers (it restates the message)."""
        return f"You said: {self.message}"


async def _wait_streamed(runs: list[Run]) -> None:
    for _ in range(STREAMED_ATTEMPTS):
        if all(run.streamed == run.whole_reply for run in runs):
            return
        await asyncio.sleep(0.05)
    pytest.fail("the runs did not stream their whole replies")


class Traffic:
    """Queries and mutations in a loop until stopped, each outcome kept: the error codes, or [] for success.
    A request that takes longer than its bound fails the test (no hang)."""

    def __init__(self, server: RunningServer, token: str) -> None:
        self.outcomes: list[list[str]] = []
        self._stop = asyncio.Event()
        self.task = asyncio.create_task(self._loop(server, token))

    async def _loop(self, server: RunningServer, token: str) -> None:
        requests = [(SESSIONS, None), (operation("CreateSession"), NEW_SESSION)]
        while not self._stop.is_set():
            document, variables = requests[len(self.outcomes) % 2]
            body = await asyncio.wait_for(post(server, token, document, variables), timeout=30)
            self.outcomes.append(error_codes(body))
            await asyncio.sleep(0.05)

    async def stop(self) -> list[list[str]]:
        self._stop.set()
        await asyncio.wait_for(self.task, timeout=60)
        return self.outcomes


@asynccontextmanager
async def traffic(server: RunningServer, token: str) -> AsyncIterator[Traffic]:
    running = Traffic(server, token)
    try:
        yield running
    finally:
        running.task.cancel()


def _stored(mariadb: MariaDbServer, database_url: str) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """The sessions (by id) and runs as they are in the tables."""
    conn = mariadb.connect(database_url.rsplit("/", 1)[1])
    with conn.cursor() as cursor:
        cursor.execute("SELECT session_id, user_id, session_data FROM agno_sessions")
        sessions = {row[0]: {"user_id": row[1], "data": json.loads(row[2] or "{}")} for row in cursor.fetchall()}
        cursor.execute("SELECT run_id, session_id, run_index, status, run_data FROM agno_runs")
        runs = [
            {"run_id": r[0], "session_id": r[1], "run_index": r[2], "status": r[3], "data": json.loads(r[4])}
            for r in cursor.fetchall()
        ]
    conn.close()
    return sessions, runs


def _messages(run: dict[str, Any], role: str) -> list[str]:
    return [str(m.get("content")) for m in run["data"].get("messages") or [] if m.get("role") == role]


def _assert_nothing_half_written(sessions: dict[str, dict[str, Any]], runs: list[dict[str, Any]]) -> None:
    """Every run row has its session and its messages (the user's message and the answer); within a session
    the runs are numbered 0, 1, 2... with no gap or repeat."""
    by_session: dict[str, list[int]] = {}
    for run in runs:
        assert run["session_id"] in sessions, f"run {run['run_id']} has no session row"
        assert _messages(run, "user") == [run["data"]["input"]["input_content"]], run
        assert _messages(run, "assistant"), run
        by_session.setdefault(run["session_id"], []).append(run["run_index"])
    for session_id, indexes in by_session.items():
        assert sorted(indexes) == list(range(len(indexes))), (session_id, indexes)


async def _prepare_sessions(server: RunningServer, token: str, count: int) -> list[str]:
    """Sessions with one completed run each."""
    session_ids = []
    for i in range(count):
        run = Run(server, token, None, f"earlier message {i}")
        await asyncio.wait_for(run.task, timeout=60)
        assert run.terminal["__typename"] == "RunCompleted"
        session_ids.append(run.session_id)
    return session_ids


async def _start_runs(server: RunningServer, token: str, existing: list[str], new: int) -> list[Run]:
    runs = [Run(server, token, session_id, f"{LONG_MESSAGE} ({session_id})") for session_id in existing]
    runs += [Run(server, token, None, f"{LONG_MESSAGE} (new {i})") for i in range(new)]
    await asyncio.wait_for(asyncio.gather(*(run.mid_flight.wait() for run in runs)), timeout=30)
    for run in runs:
        assert not run.errors and not run.task.done(), (run.errors, run.events)
    return runs


async def test_server_started_while_database_is_down_recovers_by_itself(
    mariadb: MariaDbServer, database_url: str, tmp_path: Path
) -> None:
    await asyncio.to_thread(mariadb.stop)
    token = make_token(f"user-{uuid.uuid4().hex[:8]}")
    async with serving(database_url, tmp_path / "state") as server:
        assert await _status(server, "/healthz") == 200
        assert await _status(server, "/readyz") == 503
        body = await post(server, token, SESSIONS)
        assert body.get("data") is None and error_codes(body) == ["DB_UNAVAILABLE"], body
        assert error_codes(await post(server, token, VIEWER)) == []
        refused = Run(server, token, None, "hello while down")
        await asyncio.wait_for(refused.task, timeout=30)
        assert [error["extensions"]["code"] for error in refused.errors] == ["DB_UNAVAILABLE"]

        await asyncio.to_thread(mariadb.start)
        await _wait_ready(server)

        run = Run(server, token, None, "hello once up")
        await asyncio.wait_for(run.task, timeout=60)
        assert run.terminal["__typename"] == "RunCompleted"
        listed = await execute(server, token, SESSIONS)
        assert listed["sessions"]["nodes"] == [{"id": run.session_id, "messages": {"totalCount": 2}}]


@pytest.mark.parametrize("crash", [False, True], ids=["sigterm", "sigkill"])
async def test_database_restart_during_traffic_and_runs(
    mariadb: MariaDbServer, database_url: str, tmp_path: Path, crash: bool
) -> None:
    """Runs end while the database is down; their results are stored once it is back, before RunCompleted."""
    token = make_token(f"user-{uuid.uuid4().hex[:8]}")
    settings = {"offline_delay_ms": OFFLINE_DELAY_MS, "store_retry_seconds": 30.0}
    async with serving(database_url, tmp_path / "state", **settings) as server:
        existing = await _prepare_sessions(server, token, 2)
        async with traffic(server, token) as requests:
            runs = await _start_runs(server, token, existing, new=2)

            await asyncio.to_thread(mariadb.kill if crash else mariadb.stop)
            refused = Run(server, token, None, "hello during the outage")
            await asyncio.wait_for(refused.task, timeout=30)
            assert [error["extensions"]["code"] for error in refused.errors] == ["DB_UNAVAILABLE"]
            await _wait_streamed(runs)
            await asyncio.sleep(AFTER_STREAMED_SECONDS)
            assert not any(run.task.done() for run in runs), "a run ended while its result could not be stored"
            await asyncio.to_thread(mariadb.start)
            await asyncio.wait_for(asyncio.gather(*(run.task for run in runs)), timeout=60)
            await _wait_ready(server)
            outcomes = await requests.stop()

        assert {code for codes in outcomes for code in codes} == {"DB_UNAVAILABLE"}, outcomes
        assert error_codes(await post(server, token, SESSIONS)) == []
        sessions, stored = _stored(mariadb, database_url)
        _assert_nothing_half_written(sessions, stored)
        stored_by_id = {run["run_id"]: run for run in stored}
        for run in runs:
            assert run.terminal["__typename"] == "RunCompleted", run.events
            assert run.run_id in stored_by_id, "the run reported RunCompleted but is not stored"
            row = stored_by_id[run.run_id]
            assert row["status"] == "COMPLETED"
            assert _messages(row, "user") == [run.message]
            assert _messages(row, "assistant") == [run.streamed] == [run.terminal["content"]]
        for session_id in existing:
            assert sorted(r["run_index"] for r in stored if r["session_id"] == session_id) == [0, 1]

        await _works_again(server, token, runs[0].session_id)


async def test_run_not_stored_within_the_bound_fails_with_db_unavailable_and_keeps_the_users_message(
    mariadb: MariaDbServer, database_url: str, tmp_path: Path
) -> None:
    """The database stays down longer than the retry bound: the runs end with RunFailed DB_UNAVAILABLE. Each was
    stored as it started, so once the database is back it reads as ERROR DB_UNAVAILABLE with the user's message
    and what had streamed, and the sessions take the message again."""
    token = make_token(f"user-{uuid.uuid4().hex[:8]}")
    settings = {"offline_delay_ms": OFFLINE_DELAY_MS, "store_retry_seconds": 0.5}
    async with serving(database_url, tmp_path / "state", **settings) as server:
        existing = await _prepare_sessions(server, token, 1)
        runs = await _start_runs(server, token, existing, new=1)

        await asyncio.to_thread(mariadb.stop)
        await asyncio.wait_for(asyncio.gather(*(run.task for run in runs)), timeout=60)
        for run in runs:
            assert {k: run.terminal[k] for k in ("__typename", "code")} == {
                "__typename": "RunFailed",
                "code": "DB_UNAVAILABLE",
            }
        await asyncio.to_thread(mariadb.start)
        await _wait_ready(server)

        for run in runs:
            read = await execute(
                server, token, "query R($id: ID!) { run(id: $id) { status input content } }", {"id": run.run_id}
            )
            assert read["run"] == {"status": "ERROR", "input": run.message, "content": run.streamed}
            told = await follow(server, token, run.run_id)
            assert (told[-1]["__typename"], told[-1]["code"]) == ("RunFailed", "DB_UNAVAILABLE")
        sessions, stored = _stored(mariadb, database_url)
        _assert_nothing_half_written(sessions, stored)
        stored_by_id = {row["run_id"]: row for row in stored}
        for run in runs:
            row = stored_by_id[run.run_id]
            assert row["status"] == "ERROR" and row["session_id"] == run.session_id
            assert (_messages(row, "user"), _messages(row, "assistant")) == ([run.message], [run.streamed])
        assert sorted(r["run_index"] for r in stored if r["session_id"] == existing[0]) == [0, 1]

        await _works_again(server, token, existing[0])
        await _works_again(server, token, runs[-1].session_id)


async def _works_again(server: RunningServer, token: str, session_id: str) -> None:
    """A new run on the session is stored after what was there, and the session reads back whole."""
    before = await execute(server, token, SESSION_MESSAGES, {"id": session_id})
    run = Run(server, token, session_id, "after the outage")
    await asyncio.wait_for(run.task, timeout=60)
    assert run.terminal["__typename"] == "RunCompleted"
    after = await execute(server, token, SESSION_MESSAGES, {"id": session_id})
    contents = [node["content"] for node in after["session"]["messages"]["nodes"]]
    assert after["session"]["messages"]["totalCount"] == before["session"]["messages"]["totalCount"] + 2
    assert contents[-2:] == ["after the outage", run.terminal["content"]]


SESSION_MESSAGES = "query S($id: ID!) { session(id: $id) { messages(last: 100) { totalCount nodes { content } } } }"


async def test_agno_cannot_read_the_session_so_the_run_fails_and_nothing_is_written(
    mariadb: MariaDbServer, database_url: str
) -> None:
    """Agno reads the session as a run starts and, on an error, would start a blank session and later write it
    over the stored one. With the database down at that moment the run fails instead, writes nothing, and the
    run manager is told it was not stored (its clients get DB_UNAVAILABLE)."""
    db = Database(database_url)
    try:
        await db.ensure_ready()
        await create_session(db, "reader", agent_id="assistant", session_id="named-session", name="My name")
        agent = Agent(id="assistant", model=OfflineModel(delay_seconds=0), db=db.agno_db, telemetry=False)
        await asyncio.to_thread(mariadb.stop)

        stream = agent.arun("hello", session_id="named-session", user_id="reader", stream=True, stream_events=True)
        kinds = [event.event async for event in stream]  # type: ignore[union-attr]
        assert kinds[-1] == RunEvent.run_error.value and RunEvent.run_completed.value not in kinds
        assert not await db.store_unsaved("any-run", "named-session", within_seconds=0)

        await asyncio.to_thread(mariadb.start)
        sessions, runs = _stored(mariadb, database_url)
        assert sessions["named-session"]["data"] == {"session_name": "My name"} and runs == []
    finally:
        await db.dispose()


def _server_counters(mariadb: MariaDbServer) -> dict[str, int]:
    connection = mariadb.connect()
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "SHOW GLOBAL STATUS WHERE Variable_name IN ('Com_select', 'Com_rollback', 'Com_admin_commands')"
            )
            return {name: int(value) for name, value in cursor.fetchall()}
    finally:
        connection.close()


async def test_a_page_of_sessions_is_one_round_trip_and_reads_recover_after_a_restart(
    mariadb: MariaDbServer, database_url: str, tmp_path: Path
) -> None:
    """Reads go through autocommit connections: one SELECT per page, no ROLLBACK after it and no ping before it
    while the pool is in use (the counters are the private server's alone). A connection left idle across a
    restart is pinged and replaced, so the first page after the restart is answered, not DB_UNAVAILABLE."""
    token = make_token("pager")
    async with serving(database_url, tmp_path / "state") as server:
        for _ in range(3):
            await execute(server, token, operation("CreateSession"), NEW_SESSION)
        assert len((await execute(server, token, SESSIONS))["sessions"]["nodes"]) == 3
        page = "query Page { sessions(first: 20) { nodes { id name createdAt } } }"
        await execute(server, token, page)
        before = await asyncio.to_thread(_server_counters, mariadb)
        pages = 20
        for _ in range(pages):
            assert len((await execute(server, token, page))["sessions"]["nodes"]) == 3
        after = await asyncio.to_thread(_server_counters, mariadb)
        spent = {name: after[name] - before[name] for name in after}
        assert spent == {"Com_select": pages, "Com_rollback": 0, "Com_admin_commands": 0}, spent

        await asyncio.to_thread(mariadb.stop)
        await asyncio.to_thread(mariadb.start)
        await _wait_ready(server)
        assert len((await execute(server, token, page))["sessions"]["nodes"]) == 3

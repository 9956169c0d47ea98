"""List and history queries use indexes, and a page costs a bounded query.

The SQL checked is the SQL the server really sends: a listener on the test server's engine
records each statement with its parameters while a GraphQL request runs, and the test asks the
database to explain that very statement (MariaDB `EXPLAIN`, SQLite `EXPLAIN QUERY PLAN`).
The database holds a few hundred sessions of a few users and is analyzed first, so the
optimizer chooses as it would in production.
"""

from __future__ import annotations

import asyncio
import copy
import re
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import event, inspect, select

from agno_graphql.db.database import Database, session_index_name
from tests.client import execute, run_agent
from tests.conftest import RunningServer, make_token, start_server
from tests.conftest import server_settings as settings_for

PLANNER_USERS = 4
SESSIONS_PER_PLANNER = 100
BUSY_SESSIONS = 30
LONG_SESSION_RUNS = 60
PAGE = 20

SESSIONS_TABLE = "agno_sessions"
RUNS_TABLE = "agno_runs"
OUR_INDEXES = {
    "user_updated": session_index_name(SESSIONS_TABLE, ("user_id", "updated_at", "session_id")),
    "user_created": session_index_name(SESSIONS_TABLE, ("user_id", "created_at", "session_id")),
    "user_agent_updated": session_index_name(SESSIONS_TABLE, ("user_id", "agent_id", "updated_at", "session_id")),
    "user_agent_created": session_index_name(SESSIONS_TABLE, ("user_id", "agent_id", "created_at", "session_id")),
}
# Agno's own (session_id, run_index) index on the runs table, named differently per backend.
RUNS_INDEX = {"mysql": "agno_runs_runs_session_id_run_index", "sqlite": "idx_agno_runs_session_id_run_index"}
# Agno's index on the runs table's session_id alone (same name on both backends).
RUNS_SESSION_INDEX = "idx_agno_runs_session_id"


@dataclass(frozen=True)
class Statement:
    sql: str
    parameters: tuple[Any, ...]
    rowcount: int | None


@dataclass
class StatementLog:
    """Every statement the server's engine runs while recording."""

    statements: list[Statement] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, conn: Any, cursor: Any, sql: str, parameters: Any, context: Any, many: bool) -> None:
        rowcount = getattr(cursor, "rowcount", -1)
        params = tuple(parameters) if isinstance(parameters, list | tuple) else (parameters,)
        with self._lock:
            self.statements.append(
                Statement(sql, params, rowcount if isinstance(rowcount, int) and rowcount >= 0 else None)
            )

    def record_read(self, sql: str, arguments: Any, rows: int | None) -> None:
        if rows is not None:  # answered (or failed: -1)
            with self._lock:
                self.statements.append(Statement(sql, tuple(arguments), rows if rows >= 0 else None))

    def selecting_from(self, table: str) -> list[Statement]:
        pattern = rf"\bFROM\s+(`?\w+`?\.)?`?{table}\b"
        return [s for s in self.statements if re.search(pattern, s.sql)]


@contextmanager
def recording(server: RunningServer) -> Iterator[StatementLog]:
    log = StatementLog()
    db = server.services.db
    event.listen(db.engine.sync_engine, "after_cursor_execute", log.record)
    if db.driver_reader is not None:  # MySQL's reads
        db.driver_reader.watchers.append(log.record_read)
    try:
        yield log
    finally:
        event.remove(db.engine.sync_engine, "after_cursor_execute", log.record)
        if db.driver_reader is not None:
            db.driver_reader.watchers.remove(log.record_read)


@dataclass(frozen=True)
class Seeded:
    server: RunningServer
    db: Database
    backend: str
    planner: str
    busy: str
    busy_sessions: list[str]
    talker: str
    long_session: str


def _clone_run(template: dict[str, Any], session_id: str, text: str) -> dict[str, Any]:
    """A copy of a run Agno stored, saying `text` instead, under new ids."""
    run = copy.deepcopy(template)
    run_id = str(uuid.uuid4())
    run["run_id"] = run_id
    run["session_id"] = session_id
    run["content"] = f"You said: {text}"
    if isinstance(run.get("input"), dict):
        run["input"]["input_content"] = text
    for message in run.get("messages") or []:
        message["id"] = str(uuid.uuid4())
        if "run_id" in message:
            message["run_id"] = run_id
        if message.get("role") == "user":
            message["content"] = text
        elif message.get("role") == "assistant":
            message["content"] = f"You said: {text}"
    return run


async def _wait_for_runs_to_finish(server: RunningServer) -> None:
    deadline = time.monotonic() + 20
    while server.services.run_manager.local_runs:
        assert time.monotonic() < deadline, "runs did not finish"
        await asyncio.sleep(0.02)


@pytest.fixture(scope="module")
async def seeded(
    backend: str, new_database_url: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Seeded]:
    url = new_database_url("plans")
    server = start_server(settings_for(url, tmp_path_factory.mktemp("state"), offline_delay_ms=0))
    db = Database(url)
    try:
        await db.ensure_ready()
        run_id = uuid.uuid4().hex[:8]
        talker, busy = f"user-talker-{run_id}", f"user-busy-{run_id}"
        planners = [f"user-planner{n}-{run_id}" for n in range(PLANNER_USERS)]

        # Two real runs; the other runs are copies of what Agno stored, written through Agno's own upsert_run.
        events = await run_agent(server, make_token(talker), "assistant", "message 00")
        long_session = events[0]["sessionId"]
        await run_agent(server, make_token(talker), "assistant", "message 01", long_session)
        await _wait_for_runs_to_finish(server)
        async with db.engine.connect() as conn:
            query = select(db.runs.c.run_data).where(db.runs.c.session_id == long_session, db.runs.c.run_index == 1)
            template = dict((await conn.execute(query)).scalar_one())
        for index in range(2, LONG_SESSION_RUNS):
            clone = _clone_run(template, long_session, f"message {index:02d}")
            await db.agno_db.upsert_run(clone, long_session, talker, run_index=index)

        now = int(time.time())
        rows: list[dict[str, Any]] = []
        busy_sessions = [str(uuid.uuid4()) for _ in range(BUSY_SESSIONS)]
        for n, session_id in enumerate(busy_sessions):
            rows.append(_session_row(session_id, busy, "assistant", now - 5000 + n, now - 5000 + n))
        for u, planner in enumerate(planners):
            for n in range(SESSIONS_PER_PLANNER):
                created = now - 100_000 + n * 10 + u
                updated = now - 50_000 + ((n * 37) % SESSIONS_PER_PLANNER) * 10 + u
                agent = "calculator" if n % 2 else "assistant"
                rows.append(_session_row(str(uuid.uuid4()), planner, agent, created, updated))
        async with db.engine.begin() as conn:
            await conn.execute(db.sessions.insert(), rows)
        for n, session_id in enumerate(busy_sessions):
            await db.agno_db.upsert_run(
                _clone_run(template, session_id, f"topic {n:02d}"), session_id, busy, run_index=0
            )

        async with db.engine.begin() as conn:
            if backend == "sqlite":
                await conn.exec_driver_sql("ANALYZE")
            else:
                await conn.exec_driver_sql(f"ANALYZE TABLE {SESSIONS_TABLE}, {RUNS_TABLE}")
        yield Seeded(server, db, backend, planners[0], busy, busy_sessions, talker, long_session)
    finally:
        server.stop()
        await db.dispose()


def _session_row(session_id: str, user: str, agent: str, created: int, updated: int) -> dict[str, Any]:
    return {
        "session_id": session_id,
        "session_type": "agent",
        "agent_id": agent,
        "user_id": user,
        "session_data": {},
        "created_at": created,
        "updated_at": updated,
    }


async def _explain(seeded: Seeded, statement: Statement) -> list[dict[str, Any]]:
    """The database's plan for exactly this statement, with its parameters."""
    prefix = "EXPLAIN QUERY PLAN " if seeded.backend == "sqlite" else "EXPLAIN "
    async with seeded.db.engine.connect() as conn:
        result = await conn.exec_driver_sql(prefix + statement.sql, statement.parameters)
        return [dict(row) for row in result.mappings().all()]


async def _run_recorded(
    seeded: Seeded, token: str, document: str, variables: dict[str, Any] | None = None
) -> tuple[Any, StatementLog]:
    """The result of a request, and the statements the server ran for it."""
    with recording(seeded.server) as log:
        result = await execute(seeded.server, token, document, variables)
    return result, log


async def _recorded(seeded: Seeded, token: str, document: str, variables: dict[str, Any] | None = None) -> StatementLog:
    return (await _run_recorded(seeded, token, document, variables))[1]


def _assert_uses_index(seeded: Seeded, plan: list[dict[str, Any]], table: str, index_names: set[str]) -> None:
    if seeded.backend == "sqlite":
        details = [str(row["detail"]) for row in plan]
        assert any(
            re.search(rf"\b{table}\b USING (COVERING )?INDEX ({'|'.join(index_names)})\b", d) for d in details
        ), details
        assert not any("TEMP B-TREE" in d for d in details), details
    else:
        rows = [row for row in plan if row["table"] == table]
        assert len(rows) == 1, plan
        assert rows[0]["key"] in index_names, rows[0]
        assert "filesort" not in str(rows[0]["Extra"] or "").lower(), rows[0]


LIST = """
query List($agentId: ID, $first: Int, $after: String, $last: Int, $orderBy: SessionOrder) {
  sessions(agentId: $agentId, first: $first, after: $after, last: $last, orderBy: $orderBy) {
    pageInfo { endCursor }
    nodes { id }
  }
}
"""

LIST_CASES = {
    "by_updated_at": ({"first": PAGE}, "user_updated"),
    "by_created_at": ({"first": PAGE, "orderBy": {"field": "CREATED_AT"}}, "user_created"),
    "oldest_first": ({"first": PAGE, "orderBy": {"field": "UPDATED_AT", "direction": "ASC"}}, "user_updated"),
    "last_page": ({"last": PAGE}, "user_updated"),
    "of_one_agent": ({"first": PAGE, "agentId": "calculator"}, "user_agent_updated"),
    "of_one_agent_by_created_at": (
        {"first": PAGE, "agentId": "calculator", "orderBy": {"field": "CREATED_AT"}},
        "user_agent_created",
    ),
}


@pytest.mark.parametrize("case", sorted(LIST_CASES))
async def test_session_list_query_uses_our_index_without_sorting(seeded: Seeded, case: str) -> None:
    variables, index = LIST_CASES[case]
    log = await _recorded(seeded, make_token(seeded.planner), LIST, variables)
    page_queries = [s for s in log.selecting_from(SESSIONS_TABLE) if "ORDER BY" in s.sql]
    assert len(page_queries) == 1, log.statements
    plan = await _explain(seeded, page_queries[0])
    _assert_uses_index(seeded, plan, SESSIONS_TABLE, {OUR_INDEXES[index]})


async def test_next_session_page_query_uses_our_index_without_sorting(seeded: Seeded) -> None:
    token = make_token(seeded.planner)
    first = await execute(seeded.server, token, LIST, {"first": PAGE})
    log = await _recorded(seeded, token, LIST, {"first": PAGE, "after": first["sessions"]["pageInfo"]["endCursor"]})
    page_queries = [s for s in log.selecting_from(SESSIONS_TABLE) if "ORDER BY" in s.sql]
    assert len(page_queries) == 1, log.statements
    plan = await _explain(seeded, page_queries[0])
    _assert_uses_index(seeded, plan, SESSIONS_TABLE, {OUR_INDEXES["user_updated"]})


HISTORY = """
query History($id: ID!, $last: Int) {
  session(id: $id) {
    messages(last: $last) { nodes { role content } }
  }
}
"""
RUNS = """
query Runs($id: ID!, $last: Int) {
  session(id: $id) {
    runs(last: $last) { nodes { input content } }
  }
}
"""


@pytest.mark.parametrize("document", [HISTORY, RUNS], ids=["messages", "runs"])
async def test_history_query_uses_the_session_run_index(seeded: Seeded, document: str) -> None:
    log = await _recorded(seeded, make_token(seeded.talker), document, {"id": seeded.long_session, "last": 10})
    run_queries = log.selecting_from(RUNS_TABLE)
    assert run_queries, log.statements
    for statement in run_queries:
        plan = await _explain(seeded, statement)
        _assert_uses_index(seeded, plan, RUNS_TABLE, {RUNS_INDEX[seeded.backend]})


PAGE_WITH_COUNTS = """
query Page($first: Int) {
  sessions(first: $first) { nodes { id name runCount } }
}
"""


def _joining(log: StatementLog, table: str) -> list[Statement]:
    return [s for s in log.statements if re.search(rf"\bJOIN\s+(`?\w+`?\.)?`?{table}\b", s.sql)]


async def test_page_titles_and_run_counts_use_the_indexes(seeded: Seeded) -> None:
    log = await _recorded(seeded, make_token(seeded.busy), PAGE_WITH_COUNTS, {"first": PAGE})
    # The titles come with the page: the sessions in our index's order, each joined to its first run.
    (page_query,) = _joining(log, RUNS_TABLE)
    plan = await _explain(seeded, page_query)
    _assert_uses_index(seeded, plan, SESSIONS_TABLE, {OUR_INDEXES["user_updated"]})
    _assert_uses_index(seeded, plan, RUNS_TABLE, {RUNS_INDEX[seeded.backend], RUNS_SESSION_INDEX})
    (count_query,) = log.selecting_from(RUNS_TABLE)
    plan = await _explain(seeded, count_query)
    _assert_uses_index(seeded, plan, RUNS_TABLE, {RUNS_INDEX[seeded.backend], RUNS_SESSION_INDEX})


async def test_session_page_reads_runs_only_for_its_own_sessions(seeded: Seeded) -> None:
    result, log = await _run_recorded(seeded, make_token(seeded.busy), PAGE_WITH_COUNTS, {"first": PAGE})
    nodes = result["sessions"]["nodes"]
    newest_first = list(reversed(range(BUSY_SESSIONS)))[:PAGE]
    assert [(n["name"], n["runCount"]) for n in nodes] == [(f"topic {n:02d}", 1) for n in newest_first]
    page_ids = {n["id"] for n in nodes}
    # Two statements: the page with each session's first run joined (for the title), one batched run count.
    assert len(log.statements) == 2, [s.sql for s in log.statements]
    (page_query,) = _joining(log, RUNS_TABLE)
    assert re.search(r"run_index\s*=", page_query.sql), page_query.sql
    if page_query.rowcount is not None:
        assert page_query.rowcount <= PAGE + 1
    (count_query,) = log.selecting_from(RUNS_TABLE)
    assert re.search(r"\bIN\s*\(", count_query.sql), count_query.sql
    assert _session_ids_in(count_query, seeded.busy_sessions) == page_ids


async def test_titles_of_a_single_session_are_read_on_demand(seeded: Seeded) -> None:
    session_id = seeded.busy_sessions[0]
    document = "query One($id: ID!) { session(id: $id) { name } }"
    result, log = await _run_recorded(seeded, make_token(seeded.busy), document, {"id": session_id})
    assert result["session"]["name"] == "topic 00"
    (title_query,) = log.selecting_from(RUNS_TABLE)
    assert _session_ids_in(title_query, seeded.busy_sessions) == {session_id}


async def test_session_list_without_run_fields_reads_no_runs(seeded: Seeded) -> None:
    result, log = await _run_recorded(seeded, make_token(seeded.busy), LIST, {"first": PAGE})
    assert len(result["sessions"]["nodes"]) == PAGE
    assert log.selecting_from(RUNS_TABLE) == []
    assert len(log.statements) == 1, [s.sql for s in log.statements]


async def test_last_messages_read_only_a_few_runs(seeded: Seeded) -> None:
    result, log = await _run_recorded(
        seeded, make_token(seeded.talker), HISTORY, {"id": seeded.long_session, "last": 10}
    )
    messages = result["session"]["messages"]["nodes"]
    expected: list[tuple[str, str]] = []
    for index in range(LONG_SESSION_RUNS - 5, LONG_SESSION_RUNS):
        expected += [("USER", f"message {index:02d}"), ("ASSISTANT", f"You said: message {index:02d}")]
    assert [(m["role"], m["content"]) for m in messages] == expected
    run_queries = log.selecting_from(RUNS_TABLE)
    assert run_queries, [s.sql for s in log.statements]
    limits = [_limit_of(statement) for statement in run_queries]
    assert sum(limits) <= LONG_SESSION_RUNS // 4, limits
    fetched = [s.rowcount for s in run_queries if s.rowcount is not None]
    assert sum(fetched) <= sum(limits)
    # Eleven messages (the page and one to tell there are more) lie in the newest six runs; batches sized by the
    # messages a run holds read at most a couple more.
    assert sum(limits) <= 6 + 2, limits


def _limit_of(statement: Statement) -> int:
    """The LIMIT the statement ends with (a bound parameter, the last one)."""
    match = re.search(r"\bLIMIT\s+(\?|%s)(\s+OFFSET\s+(\?|%s))?\s*$", statement.sql)
    assert match is not None, f"no LIMIT in {statement.sql}"
    value = statement.parameters[-2] if match.group(2) else statement.parameters[-1]
    assert isinstance(value, int), statement
    return value


def _session_ids_in(statement: Statement, known: Sequence[str]) -> set[str]:
    return {p for p in statement.parameters if isinstance(p, str) and p in known}


async def _session_indexes(db: Database) -> list[dict[str, Any]]:
    async with db.engine.connect() as conn:
        indexes = await conn.run_sync(lambda sync_conn: inspect(sync_conn).get_indexes(SESSIONS_TABLE))
    return sorted(({"name": i["name"], "columns": list(i["column_names"])} for i in indexes), key=lambda i: i["name"])


async def test_index_creation_is_idempotent(new_database_url: Callable[[str], str]) -> None:
    url = new_database_url("indexes")
    first, second = Database(url), Database(url)
    try:
        await first.ensure_ready()
        created = await _session_indexes(first)
        await second.ensure_ready()
        again = await _session_indexes(second)
    finally:
        await first.dispose()
        await second.dispose()
    assert again == created
    ours = {i["name"]: i["columns"] for i in again if "_agql_" in i["name"]}
    assert ours == {
        OUR_INDEXES["user_updated"]: ["user_id", "updated_at", "session_id"],
        OUR_INDEXES["user_created"]: ["user_id", "created_at", "session_id"],
        OUR_INDEXES["user_agent_updated"]: ["user_id", "agent_id", "updated_at", "session_id"],
        OUR_INDEXES["user_agent_created"]: ["user_id", "agent_id", "created_at", "session_id"],
    }
    column_lists = [tuple(i["columns"]) for i in again]
    assert len(column_lists) == len(set(column_lists)), again


TITLE_SELECTIONS = {
    "edges": "query Page($first: Int) { sessions(first: $first) { edges { node { id name } } } }",
    "fragment": """
        query Page($first: Int) { sessions(first: $first) { nodes { id ...Title } } }
        fragment Title on Session { name }
    """,
    "inline_fragment": """
        query Page($first: Int) { sessions(first: $first) { ... on SessionConnection { nodes { id t: name } } } }
    """,
}


@pytest.mark.parametrize("selection", sorted(TITLE_SELECTIONS))
async def test_page_titles_come_with_the_page_however_name_is_selected(seeded: Seeded, selection: str) -> None:
    result, log = await _run_recorded(seeded, make_token(seeded.busy), TITLE_SELECTIONS[selection], {"first": PAGE})
    connection = result["sessions"]
    nodes = [edge["node"] for edge in connection["edges"]] if "edges" in connection else connection["nodes"]
    names = [node.get("name", node.get("t")) for node in nodes]
    assert names == [f"topic {n:02d}" for n in list(reversed(range(BUSY_SESSIONS)))[:PAGE]]
    assert len(log.statements) == 1, [s.sql for s in log.statements]
    assert len(_joining(log, RUNS_TABLE)) == 1

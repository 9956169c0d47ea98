"""A server restarted on a database that already holds its tables keeps every query and mutation working.

Server 1 starts on a fresh database, stores sessions and runs, and stops. Server 2 then starts
on the same database with fresh process state, so it finds the tables and reflects them: on
MariaDB that is the trap where JSON columns come back as text (see `AgnoMySQLDb`).
Each test below looks at one query or mutation on server 2.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import JSON, create_engine, text

from agno_graphql.db.database import Database
from tests.client import execute, run_agent
from tests.conftest import RunningServer, make_token, start_server
from tests.conftest import server_settings as settings_for
from tests.matrix_support import DELETE_SESSION, RENAME_SESSION, create_session

SESSIONS = """
query Sessions($first: Int, $after: String) {
  sessions(first: $first, after: $after) {
    totalCount
    pageInfo { hasNextPage endCursor }
    nodes { id agentId name runCount }
  }
}
"""
SESSION = """
query Session($id: ID!) {
  session(id: $id) { id agentId name runCount }
}
"""
MESSAGES = """
query Messages($id: ID!, $first: Int, $after: String) {
  session(id: $id) {
    messages(first: $first, after: $after) {
      totalCount
      pageInfo { hasNextPage endCursor }
      nodes { runId role content toolCalls { name arguments } toolName }
    }
  }
}
"""
RUNS = """
query Runs($id: ID!, $first: Int, $after: String) {
  session(id: $id) {
    runs(first: $first, after: $after) {
      totalCount
      pageInfo { hasNextPage endCursor }
      nodes { id agentId status input content metrics { outputTokens } }
    }
  }
}
"""

CHAT_INPUTS = ["hello from before the restart", "second message", "third message"]
CHAT_NAME = "Chat before restart"


@dataclass(frozen=True)
class Restarted:
    """Server 2, on the database server 1 filled, and what server 1 stored."""

    server: RunningServer
    database_url: str
    reader: str
    calc_session: str
    chat_session: str
    empty_session: str
    renamer: str
    rename_session: str
    deleter: str
    delete_session: str
    runner: str
    run_session: str


async def _run(server: RunningServer, user: str, agent_id: str, message: str, session_id: str | None = None) -> str:
    events = await run_agent(server, make_token(user), agent_id, message, session_id)
    assert events[-1]["__typename"] == "RunCompleted", events[-1]
    return str(events[0]["sessionId"])


def _new_user(role: str) -> str:
    return f"user-{role}-{uuid.uuid4().hex[:8]}"


async def _two_pages(
    restarted: Restarted, document: str, connection: tuple[str, ...], variables: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The reader's page that `variables` asks for on server 2, and the page after it; `connection` is the path of
    keys to the paged field in the result."""
    token = make_token(restarted.reader)

    async def page(page_variables: dict[str, Any]) -> dict[str, Any]:
        found: Any = await execute(restarted.server, token, document, page_variables)
        for key in connection:
            found = found[key]
        return dict(found)

    first = await page(variables)
    return first, await page({**variables, "after": first["pageInfo"]["endCursor"]})


@pytest.fixture(scope="module")
async def restarted(
    new_database_url: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Restarted]:
    url = new_database_url("restart")
    first = start_server(settings_for(url, tmp_path_factory.mktemp("state-before")))
    try:
        reader = _new_user("reader")
        calc_session = (await create_session(first, make_token(reader), "calculator"))["id"]
        await _run(first, reader, "calculator", "What is 12 * 7?", calc_session)
        chat_session = await _run(first, reader, "assistant", CHAT_INPUTS[0])
        for message in CHAT_INPUTS[1:]:
            await _run(first, reader, "assistant", message, chat_session)
        rename = {"input": {"sessionId": chat_session, "name": CHAT_NAME}}
        await execute(first, make_token(reader), RENAME_SESSION, rename)
        empty_session = (await create_session(first, make_token(reader), "assistant", name="Empty one"))["id"]

        renamer, deleter, runner = _new_user("renamer"), _new_user("deleter"), _new_user("runner")
        rename_session = await _run(first, renamer, "assistant", "please rename me later")
        delete_session = await _run(first, deleter, "calculator", "What is 12 * 7?")
        run_session = await _run(first, runner, "assistant", "message before restart")
    finally:
        first.stop()
    assert not first.thread.is_alive(), "server 1 did not stop"

    second = start_server(settings_for(url, tmp_path_factory.mktemp("state-after")))
    try:
        yield Restarted(
            server=second,
            database_url=url,
            reader=reader,
            calc_session=calc_session,
            chat_session=chat_session,
            empty_session=empty_session,
            renamer=renamer,
            rename_session=rename_session,
            deleter=deleter,
            delete_session=delete_session,
            runner=runner,
            run_session=run_session,
        )
    finally:
        second.stop()


def _count_runs(database_url: str, session_id: str) -> int:
    """Rows of the session in Agno's runs table, read with a plain synchronous connection."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            query = text("SELECT COUNT(*) FROM agno_runs WHERE session_id = :session_id")
            return int(conn.execute(query, {"session_id": session_id}).scalar_one())
    finally:
        engine.dispose()


async def test_viewer_works_after_restart(restarted: Restarted) -> None:
    result = await execute(restarted.server, make_token(restarted.reader), "{ viewer { userId } }")
    assert result == {"viewer": {"userId": restarted.reader}}


async def test_agents_and_agent_work_after_restart(restarted: Restarted) -> None:
    token = make_token(restarted.reader)
    agents = await execute(restarted.server, token, "{ agents { id name } }")
    assert [a["id"] for a in agents["agents"]] == ["assistant", "calculator", "helpdesk"]
    agent = await execute(
        restarted.server,
        token,
        'query { agent(id: "calculator") { id tools { name } sessions(first: 5) { totalCount nodes { id } } } }',
    )
    calculator = agent["agent"]
    assert calculator["id"] == "calculator"
    assert {t["name"] for t in calculator["tools"]} == {"add", "subtract", "multiply", "divide"}
    assert calculator["sessions"] == {"totalCount": 1, "nodes": [{"id": restarted.calc_session}]}


async def test_sessions_list_pages_with_names_and_run_counts_after_restart(restarted: Restarted) -> None:
    first, second = await _two_pages(restarted, SESSIONS, ("sessions",), {"first": 2})
    assert first["totalCount"] == 3 and first["pageInfo"]["hasNextPage"] is True
    assert second["totalCount"] == 3 and second["pageInfo"]["hasNextPage"] is False
    nodes = first["nodes"] + second["nodes"]
    assert len(nodes) == 3
    by_id = {node["id"]: node for node in nodes}
    assert by_id == {
        restarted.calc_session: {
            "id": restarted.calc_session,
            "agentId": "calculator",
            "name": "What is 12 * 7?",
            "runCount": 1,
        },
        restarted.chat_session: {
            "id": restarted.chat_session,
            "agentId": "assistant",
            "name": CHAT_NAME,
            "runCount": 3,
        },
        restarted.empty_session: {
            "id": restarted.empty_session,
            "agentId": "assistant",
            "name": "Empty one",
            "runCount": 0,
        },
    }


async def test_session_messages_page_with_stored_content_after_restart(restarted: Restarted) -> None:
    variables = {"id": restarted.chat_session, "first": 4}
    first, second = await _two_pages(restarted, MESSAGES, ("session", "messages"), variables)
    assert first["totalCount"] == 6 and first["pageInfo"]["hasNextPage"] is True
    assert second["pageInfo"]["hasNextPage"] is False
    conversation = [(m["role"], m["content"]) for m in first["nodes"] + second["nodes"]]
    expected: list[tuple[str, str]] = []
    for message in CHAT_INPUTS:
        expected += [("USER", message), ("ASSISTANT", f"You said: {message}")]
    assert conversation == expected


async def test_tool_calls_read_back_as_json_after_restart(restarted: Restarted) -> None:
    variables = {"id": restarted.calc_session, "first": 10}
    messages = (await execute(restarted.server, make_token(restarted.reader), MESSAGES, variables))["session"][
        "messages"
    ]["nodes"]
    assert [m["role"] for m in messages] == ["USER", "ASSISTANT", "TOOL", "ASSISTANT"]
    assert messages[1]["toolCalls"] == [{"name": "multiply", "arguments": {"a": 12, "b": 7}}]
    assert messages[2]["toolName"] == "multiply" and messages[2]["content"] == "84"
    assert messages[3]["content"] == "The answer is 84."


async def test_session_runs_page_with_stored_content_after_restart(restarted: Restarted) -> None:
    variables = {"id": restarted.chat_session, "first": 2}
    first, second = await _two_pages(restarted, RUNS, ("session", "runs"), variables)
    assert first["totalCount"] == 3 and first["pageInfo"]["hasNextPage"] is True
    assert second["pageInfo"]["hasNextPage"] is False
    runs = first["nodes"] + second["nodes"]
    assert [(r["input"], r["content"]) for r in runs] == [(m, f"You said: {m}") for m in CHAT_INPUTS]
    assert {(r["agentId"], r["status"]) for r in runs} == {("assistant", "COMPLETED")}
    assert all(isinstance(r["metrics"]["outputTokens"], int) for r in runs)
    assert len({r["id"] for r in runs}) == 3


async def test_create_session_works_after_restart(restarted: Restarted, user_id: str) -> None:
    token = make_token(user_id)
    session_id = (await create_session(restarted.server, token, "calculator", name="Created after restart"))["id"]
    read = await execute(restarted.server, token, SESSION, {"id": session_id})
    assert read["session"] == {
        "id": session_id,
        "agentId": "calculator",
        "name": "Created after restart",
        "runCount": 0,
    }


async def test_rename_session_stored_before_restart_persists(restarted: Restarted) -> None:
    token = make_token(restarted.renamer)
    rename = {"input": {"sessionId": restarted.rename_session, "name": "Renamed after"}}
    renamed = await execute(restarted.server, token, RENAME_SESSION, rename)
    assert renamed["renameSession"]["session"] == {"id": restarted.rename_session, "name": "Renamed after"}
    read = await execute(restarted.server, token, SESSION, {"id": restarted.rename_session})
    assert read["session"]["name"] == "Renamed after" and read["session"]["runCount"] == 1
    listed = await execute(restarted.server, token, SESSIONS, {"first": 5})
    assert [(n["id"], n["name"]) for n in listed["sessions"]["nodes"]] == [(restarted.rename_session, "Renamed after")]


async def test_delete_session_stored_before_restart_removes_its_runs(restarted: Restarted) -> None:
    token = make_token(restarted.deleter)
    assert _count_runs(restarted.database_url, restarted.delete_session) == 1
    deleted = await execute(restarted.server, token, DELETE_SESSION, {"input": {"sessionId": restarted.delete_session}})
    assert deleted == {"deleteSession": {"deletedSessionId": restarted.delete_session}}
    read = await execute(restarted.server, token, SESSION, {"id": restarted.delete_session})
    assert read == {"session": None}
    assert _count_runs(restarted.database_url, restarted.delete_session) == 0


async def test_run_on_session_stored_before_restart_continues_it(restarted: Restarted) -> None:
    token = make_token(restarted.runner)
    events = await run_agent(restarted.server, token, "assistant", "message after restart", restarted.run_session)
    assert events[-1]["__typename"] == "RunCompleted", events[-1]
    assert events[-1]["content"] == "You said: message after restart"
    assert {e["sessionId"] for e in events} == {restarted.run_session}
    read = await execute(restarted.server, token, SESSION, {"id": restarted.run_session})
    assert read["session"]["runCount"] == 2
    history = await execute(restarted.server, token, MESSAGES, {"id": restarted.run_session, "first": 10})
    nodes = history["session"]["messages"]["nodes"]
    assert [(m["role"], m["content"]) for m in nodes] == [
        ("USER", "message before restart"),
        ("ASSISTANT", "You said: message before restart"),
        ("USER", "message after restart"),
        ("ASSISTANT", "You said: message after restart"),
    ]
    assert nodes[2]["runId"] == events[0]["runId"] != nodes[0]["runId"]


async def test_reflected_tables_keep_json_column_types(new_database_url: Callable[[str], str]) -> None:
    url = new_database_url("reflect")
    creator, reflector = Database(url), Database(url)
    try:
        await creator.ensure_ready()
        await reflector.ensure_ready()
        for db in (creator, reflector):
            assert isinstance(db.sessions.c.session_data.type, JSON)
            assert isinstance(db.sessions.c["metadata"].type, JSON)
            assert isinstance(db.runs.c.run_data.type, JSON)
    finally:
        await creator.dispose()
        await reflector.dispose()

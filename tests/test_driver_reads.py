"""On MySQL our reads go through the driver's pool (agno_graphql/db/driver_reads.py), with SQL compiled by SQLAlchemy:
every kind of statement the read paths use must give exactly the rows SQLAlchemy's own execution gives, JSON
documents decoded, IN lists expanded, literal values bound; and a read that cannot reach the database is
DB_UNAVAILABLE. (SQLite reads go through the engine; these tests are MariaDB's.)"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import Executable, bindparam, func, select, text
from sqlalchemy.engine import make_url

from agno_graphql.db.database import Database
from agno_graphql.db.driver_reads import DriverReader
from agno_graphql.db.history import _batch_statement, _BatchShape
from agno_graphql.db.sessions import _list_statement, _ListShape
from agno_graphql.errors import DatabaseUnavailable
from tests.conftest import MYSQL_PROBLEM, MySQLDatabases

pytestmark = pytest.mark.skipif(MYSQL_PROBLEM is not None, reason="MariaDB not reachable")

USER = "reader-user"


@pytest.fixture
async def db(mysql_databases: MySQLDatabases) -> AsyncIterator[Database]:
    database = Database(mysql_databases.create("driver_reads"))
    await database.ensure_ready()
    await _seed(database)
    yield database
    await database.dispose()


async def _seed(db: Database) -> None:
    sessions, runs = db.sessions, db.runs
    async with db.engine.begin() as conn:
        for i in range(3):
            session_id = f"s{i}"
            await conn.execute(
                sessions.insert().values(
                    session_id=session_id,
                    session_type="agent",
                    agent_id="assistant",
                    user_id=USER,
                    session_data={"session_name": f"name {i}"} if i else {},
                    created_at=100 + i,
                    updated_at=200 + i,
                )
            )
            for run_index in range(i + 1):
                data = {
                    "run_id": f"{session_id}-r{run_index}",
                    "input": {"input_content": f"question {i}.{run_index} with 'quotes' and % and ü"},
                    "messages": [
                        {"role": "user", "content": f"question {i}.{run_index}"},
                        {"role": "assistant", "content": "answer", "metrics": {"total_tokens": 3}},
                    ],
                }
                await conn.execute(
                    runs.insert().values(
                        run_id=f"{session_id}-r{run_index}",
                        session_id=session_id,
                        run_type="agent",
                        run_index=run_index,
                        status="COMPLETED",
                        run_data=data,
                        created_at=300 + run_index,
                    )
                )


async def _through_sqlalchemy(db: Database, statement: Executable, params: dict[str, Any] | None) -> list[Any]:
    async with db.engine.connect() as conn:
        return [tuple(row) for row in (await conn.execute(statement, params)).all()]


def _statements(db: Database) -> dict[str, tuple[Executable, dict[str, Any] | None]]:
    """Every kind of statement the read paths use, by what it shows, with the values it needs."""
    s, r = db.sessions, db.runs
    page_shape = _ListShape(
        by_agent=False, after=False, before=False, field="updated_at", descending=True, backward=False
    )
    after_shape = _ListShape(
        by_agent=True, after=True, before=False, field="created_at", descending=False, backward=False
    )
    batch = _BatchShape(after=False, before=False, bounded=True, backward=True)
    return {
        "page with titles": (_list_statement(db, replace(page_shape, with_title=True)), None),
        "page": (_list_statement(db, page_shape), None),
        "page after a cursor": (
            _list_statement(db, after_shape),
            {"agent_id": "assistant", "after_time": 100, "after_id": "s0"},
        ),
        "batch of runs (JSON)": (_batch_statement(db, batch), {"session_id": "s2", "run_bound": 2, "batch": 5}),
        "IN list": (
            select(r.c.session_id, func.count())
            .where(r.c.session_id.in_(["s0", "s2", "nope"]))
            .group_by(r.c.session_id)
            .order_by(r.c.session_id),
            None,
        ),
        "JSON path over IN": (
            select(r.c.session_id, r.c.run_data[("input", "input_content")].as_string())
            .where(r.c.session_id.in_(["s1", "s2"]), r.c.run_index == 0)
            .order_by(r.c.session_id),
            None,
        ),
        "literal values": (
            select(s.c.session_id).where(s.c.created_at > 100, s.c.agent_id == "assistant").order_by(s.c.session_id),
            None,
        ),
        "text with a percent": (text("SELECT COUNT(*), '100%' FROM agno_runs WHERE session_id = :sid"), {"sid": "s2"}),
        "expanding bind": (
            select(s.c.session_id).where(s.c.session_id.in_(bindparam("ids", expanding=True))).order_by(s.c.session_id),
            {"ids": ["s1", "s0"]},
        ),
    }


async def test_every_kind_of_read_gives_the_rows_sqlalchemy_gives(db: Database) -> None:
    assert db.driver_reader is not None
    statements = _statements(db)
    for label, (statement, params) in statements.items():
        values = {"user_id": USER, "page_limit": 10, **(params or {})}
        expected = await _through_sqlalchemy(db, statement, values)
        got = [tuple(row) for row in await db.read(statement, values)]
        assert got == expected, label
        assert got, f"{label}: the comparison needs rows"
    batch = await db.read(*statements["batch of runs (JSON)"])
    assert isinstance(batch[0][2], dict) and batch[0][2]["messages"][1]["metrics"] == {"total_tokens": 3}


async def test_a_statement_reused_with_new_values_reads_the_new_values(db: Database) -> None:
    statement = _list_statement(
        db, _ListShape(by_agent=False, after=False, before=False, field="updated_at", descending=True, backward=False)
    )
    first = await db.read(statement, {"user_id": USER, "page_limit": 2})
    other = await db.read(statement, {"user_id": "someone-else", "page_limit": 2})
    again = await db.read(statement, {"user_id": USER, "page_limit": 10})
    assert [row[0] for row in first] == ["s2", "s1"]
    assert other == []
    assert [row[0] for row in again] == ["s2", "s1", "s0"]


async def test_a_read_that_cannot_reach_the_database_is_db_unavailable(db: Database) -> None:
    unreachable = make_url(str(db.url.render_as_string(hide_password=False))).set(port=1)
    reader = DriverReader(unreachable, db.engine.dialect, max_connections=2, wait_seconds=5, recycle_seconds=60)
    with pytest.raises(DatabaseUnavailable):
        await reader.read(select(db.sessions.c.session_id))
    await reader.dispose()

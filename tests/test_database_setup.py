"""Several workers start at once on a new database: each sets up (or finds) the tables and indexes."""

from __future__ import annotations

import asyncio
import multiprocessing
from collections.abc import Callable

from sqlalchemy import create_engine, inspect

from agno_graphql.db.database import _SESSION_INDEXES, Database, session_index_name

PROCESSES = 4


def _set_up(url: str) -> str:
    async def main() -> str:
        database = Database(url)
        try:
            await database.ensure_ready()
            return "ready"
        except Exception as exc:  # reported to the test, which shows the cause
            return f"{type(exc).__name__}: {exc.__cause__!r}"
        finally:
            await database.dispose()

    return asyncio.run(main())


def test_workers_starting_together_on_a_new_database_all_become_ready(
    new_database_url: Callable[[str], str],
) -> None:
    for round_ in range(3):
        url = new_database_url(f"setup-race-{round_}")
        with multiprocessing.get_context("spawn").Pool(PROCESSES) as pool:
            outcomes = pool.map(_set_up, [url] * PROCESSES)
        assert outcomes == ["ready"] * PROCESSES

        engine = create_engine(url)
        try:
            inspector = inspect(engine)
            assert {"agno_sessions", "agno_runs"} <= set(inspector.get_table_names())
            indexes = {index["name"] for index in inspector.get_indexes("agno_sessions")}
            assert {session_index_name("agno_sessions", columns) for columns in _SESSION_INDEXES} <= indexes
        finally:
            engine.dispose()

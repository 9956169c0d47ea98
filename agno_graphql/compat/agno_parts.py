"""Agno's private parts the database layer and the run manager lean on. Checked with agno 3.1.10.

Agno's SQL databases make their tables lazily in `_get_table`, keep them in a cache that a failed attempt
poisons (`_invalidate_table_cache` clears it), and build each in `_resolve_table`; none of it has a public
equivalent. A run stopped by task cancellation is stored by Agno in a task of its own, kept in
`agno.run.background._background_tasks`; the public `await_background_runs` waits for every event loop's tasks
and iterates the set while other threads may change it (tests serve several apps in threads of one process).
"""

from __future__ import annotations

import asyncio
from typing import Any

from agno.db.mysql import AsyncMySQLDb
from agno.db.sqlite import AsyncSqliteDb
from agno.run import background
from sqlalchemy import Table

AgnoSqlDb = AsyncMySQLDb | AsyncSqliteDb

# The user message Agno adds after a tool that made media, to hand the model that media (`Model` in
# agno/models/base.py writes it inline; no constant names it). It is Agno's, not the user's: the history leaves it
# out and shows the media on the run's last assistant message.
AGNO_MEDIA_HANDOFF_TEXT = "The tool call above generated the attached media."


async def agno_table(db: AgnoSqlDb, table_type: str, create: bool = False) -> Table | None:
    """Agno's Table object of one of its tables ("sessions", "runs"), made in the database when `create`."""
    return await db._get_table(table_type, create_table_if_not_found=create)


def forget_agno_table(db: AgnoSqlDb, table_name: str) -> None:
    """Drop Agno's cached Table (and its MetaData entry), so a new attempt reflects or creates it again."""
    db._invalidate_table_cache(table_name)


class TableResolution(AsyncMySQLDb):
    """Agno's AsyncMySQLDb with a hook on each table it builds or reflects (`_resolve_table`, private)."""

    async def _resolve_table(
        self, table_name: str, table_type: str, create_table_if_not_found: bool | None = False
    ) -> Table | None:
        try:
            table = await super()._resolve_table(table_name, table_type, create_table_if_not_found)
        except Exception:
            # A failed attempt (database down) leaves the Table registered in Agno's MetaData, and every
            # retry then fails with "already defined for this MetaData instance": forget it so a retry works.
            forget_agno_table(self, table_name)
            raise
        if table is not None:
            self.table_resolved(table, table_type)
        return table

    def table_resolved(self, table: Table, table_type: str) -> None:
        """Called with each table Agno has built or reflected."""


def agno_background_tasks(loop: asyncio.AbstractEventLoop) -> set[asyncio.Task[Any]]:
    """The writes Agno is making in tasks of its own on `loop`, still going."""
    # Copied in one step first: other threads' loops may change the set meanwhile.
    return {task for task in tuple(background._background_tasks) if task.get_loop() is loop and not task.done()}

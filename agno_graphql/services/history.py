"""A session's history as the API pages it: messages, runs, and the per-session figures batched by DataLoaders."""

from __future__ import annotations

from collections.abc import Sequence

from agno_graphql.db import history, sessions, unfinished
from agno_graphql.db.database import Database
from agno_graphql.db.pagination import Page, PageLimits, page_request
from agno_graphql.records import MessageRecord, PageArgs, RunRecord


class HistoryService:
    """Reads of sessions the caller already holds: ownership was checked when the session was read."""

    def __init__(self, db: Database, limits: PageLimits) -> None:
        self._db = db
        self._limits = limits

    async def messages(
        self, session_id: str, page: PageArgs, roles: Sequence[str] | None = None
    ) -> Page[MessageRecord]:
        request = page_request(history.MESSAGE_CURSOR, (int, int), page, self._limits)
        return await history.list_messages(
            self._db, session_id, request, history.DEFAULT_ROLES if roles is None else roles
        )

    async def runs(self, session_id: str, page: PageArgs, *, include_replaced: bool = False) -> Page[RunRecord]:
        request = page_request(history.RUN_CURSOR, (int,), page, self._limits)
        return await history.list_runs(self._db, session_id, request, include_replaced)

    async def queued(self, session_id: str) -> list[RunRecord]:
        """The runs waiting in the session's line, first in line first."""
        return [
            RunRecord(
                id=queued.start.run_id,
                session_id=session_id,
                agent_id=queued.start.agent_id,
                run_index=-1,
                status=history.QUEUED_STATUS,
                input=queued.start.message,
                content=None,
                created_at=int(queued.start.created_at),
            )
            for queued in await unfinished.queued_runs(self._db, session_id)
        ]

    async def run_counts(self, session_ids: Sequence[str]) -> list[int]:
        counts = await history.run_counts(self._db, session_ids)
        return [counts.get(session_id, 0) for session_id in session_ids]

    async def titles(self, session_ids: Sequence[str]) -> list[str | None]:
        inputs = await history.first_inputs(self._db, session_ids)
        return [sessions.short_name(inputs.get(session_id)) for session_id in session_ids]

"""What the store does for a run: its row as it starts (RUNNING, with the user's message), the claim that lets a
paused run go on once only, and what happens once Agno has ended it, before its session is free again: it is made
sure to be stored, then a name given during the run is put back, a failure Agno does not record is noted on the
stored run, and a pause keeps where the run's event numbering stands.

Given to the run manager when it is built (`RunManager(steps=...)`): the manager calls down into these.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from agno_graphql.agents.broker import RunBroker, RunInfo
from agno_graphql.agents.runner import INTERRUPTED
from agno_graphql.db import attachments as attachment_rows
from agno_graphql.db import conversation, history, sessions, unfinished
from agno_graphql.db.database import Database
from agno_graphql.errors import DB_UNAVAILABLE, MEDIA_STORE_FAILED
from agno_graphql.records import ATTACHMENTS_KEY, Cancelled, Completed, Event, Failed, Paused, RunStart

MEDIA_NOT_STORED = (
    "The media the answer made could not be stored (the media storage failed; the server's log says why). "
    "The run is kept as failed, without them."
)


class StoredRunSteps:
    """The run manager's `RunSteps`, on the Agno database and the broker's pending names."""

    def __init__(self, db: Database, broker: RunBroker, store_retry_seconds: float) -> None:
        self._db = db
        self._broker = broker
        self._store_retry_seconds = store_retry_seconds

    async def store_start(self, start: RunStart) -> None:
        await unfinished.store_started(self._db, start)

    async def claim_paused(self, run: RunInfo) -> bool:
        return await history.claim_paused(self._db, run.run_id)

    async def first_in_line(self, session_id: str) -> RunStart | None:
        waiting = await unfinished.queued_runs(self._db, session_id)
        if not waiting:
            return None
        start = waiting[0].start
        ids = [str(i) for i in start.metadata.get(ATTACHMENTS_KEY) or ()]
        found = await attachment_rows.get_many(self._db, ids)
        return replace(start, attachments=tuple(found[i] for i in ids if i in found))

    async def take_from_line(self, run: RunInfo, media: Mapping[str, Any]) -> bool:
        return await unfinished.take_queued(self._db, run.run_id, media)

    async def store(self, run: RunInfo) -> bool:
        """True when the run is stored as it ended (Agno's writes are retried for a while if the database was
        down); False makes the run end with DB_UNAVAILABLE."""
        return await self._db.store_unsaved(run.run_id, run.session_id, self._store_retry_seconds)

    async def after(self, run: RunInfo, terminal: Event | None) -> Event | None:
        """Put back a name given during the run; mark a timed-out or broken-off run failed; keep a stopped run's
        answer so far in its messages; record the media it
        made as attachments. A completed run whose media could not be stored fails, MEDIA_STORE_FAILED: the
        failure it is told with instead of its completion."""
        name = await self._broker.take_pending_name(run.session_id, run.run_id)
        if name is not None:
            await sessions.rename_session(self._db, run.user_id, run.session_id, name)
        if isinstance(terminal, Failed) and terminal.code != DB_UNAVAILABLE:
            await history.record_failure(self._db, run.run_id, terminal.code, terminal.message)
        if isinstance(terminal, Paused):
            await history.record_pause(self._db, run.run_id, terminal.index + 1)
        if isinstance(terminal, Cancelled) and terminal.content:
            await conversation.keep_partial_answer(self._db, run.run_id, terminal.content)
        if isinstance(terminal, Cancelled) and terminal.reason == INTERRUPTED:
            # Before the session is free: the run that interrupted it starts next, with this exchange in its history.
            await conversation.keep_in_history(self._db, run.run_id)
        if terminal is None or isinstance(terminal, Failed):
            return None
        media = await attachment_rows.output_media(self._db, run.run_id)
        if media is None:
            return None
        # Only a run whose output holds bytes inline pays for reading and rewriting its whole row.
        dropped = attachment_rows.holds_inline(media[1]) and await history.drop_unstored_media(self._db, run.run_id)
        if dropped and isinstance(terminal, Completed):
            failed = Failed.instead_of(terminal, MEDIA_NOT_STORED, MEDIA_STORE_FAILED)
            await history.record_failure(self._db, run.run_id, failed.code, failed.message)
            return failed
        await attachment_rows.store_made(self._db, run.user_id, media)
        return None

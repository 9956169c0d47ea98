"""Runs whose server went away: found, stored as failed with what they had said, told, and their session freed.

Every run is stored as it starts (RUNNING, with the user's message). A run whose instance dies (SIGKILL, OOM, a
lost machine) leaves that row behind. Over Redis, each instance looks every `interval` for rows RUNNING with nobody
holding their session (its lease lapsed), so another instance notices within the lease and the interval: it
stores the run ERROR `RUN_LOST` with the content streamed so far (from the run's event stream), tells its
followers `RunFailed` `RUN_LOST`, and frees the session. With one instance (no shared broker) the next start does
it for every row it finds RUNNING (the user's message is kept; the partial answer only where Redis held it).

A row left RUNNING by a run that ended here but could not be stored (the database was down longer than the store
retry bound) is stored ERROR `DB_UNAVAILABLE`, as its followers were told, once the database is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from agno_graphql.agents.broker import ENDING, GOING, RunBroker, RunInfo, SessionChange
from agno_graphql.agents.events import RUN_LOST
from agno_graphql.agents.runner import NOT_STORED, RunManager
from agno_graphql.db import history, unfinished
from agno_graphql.db.database import Database
from agno_graphql.errors import DB_UNAVAILABLE
from agno_graphql.records import TERMINAL, ContentDelta, Event, Failed, Paused, RunRecord

log = logging.getLogger(__name__)

LOST = "The server running this run stopped."


class LostRuns:
    """Finds and settles runs nobody drives any more; `start` once the broker serves, `stop` before it closes."""

    def __init__(self, db: Database, broker: RunBroker, manager: RunManager, interval_seconds: float) -> None:
        self._db = db
        self._broker = broker
        self._manager = manager
        self._interval_seconds = interval_seconds
        self._task: asyncio.Task[None] | None = None
        # Without a shared broker a run this process does not know of is another process's only at start.
        self._swept_at_start = False

    async def start(self) -> None:
        """Settle what a server before this one left (now, when the database answers), then look again and
        again in the background."""
        await self._sweep_logged()
        self._task = asyncio.create_task(self._keep_sweeping())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    async def _keep_sweeping(self) -> None:
        while True:
            await asyncio.sleep(self._interval_seconds)
            await self._sweep_logged()

    async def _sweep_logged(self) -> None:
        try:
            settled = await self.sweep()
        except Exception:
            log.warning("could not look for lost runs; trying again in %.0f s", self._interval_seconds, exc_info=True)
            return
        if settled:
            log.warning("settled %d run(s) whose server had stopped", settled)

    async def sweep(self) -> int:
        """Settle every stored run left unfinished by a server that went away (and the runs that server had taken
        into a session's line), then start the first run waiting in each line whose session is free; how many
        were settled."""
        at_start = not self._swept_at_start
        shared = self._broker.leases_lapse
        settled = 0
        lines: set[str] = set()
        rows = await unfinished.unfinished_runs(self._db)
        for row in rows:
            if row.status != "RUNNING":
                continue
            state = await self._broker.run_state(row.run_id)
            if state == GOING:
                continue
            if state != ENDING and not (at_start or shared):
                continue  # another process's run (one without a shared broker): only its own next start settles it
            if await self.settle(row.run_id, row.user_id):
                settled += 1
                lines.add(row.session_id)
        for row in rows:
            if row.status != "PENDING":
                continue
            lines.add(row.session_id)
            if (at_start or shared) and not await self._broker.instance_alive(row.queued_by):
                # Taken into the line by an instance that went away: lost with it, the message kept.
                settled += await self.settle(row.run_id, row.user_id)
        self._swept_at_start = True
        active = await self._broker.active_runs(sorted(lines))
        for session_id in sorted(lines - set(active)):
            # Its run ended while the next could not start (the user had too many runs going, or it was lost).
            await self._manager.start_next(session_id)
        return settled

    async def settle(self, run_id: str, user_id: str) -> bool:
        """Store an unfinished run of `user_id`'s that nobody drives as failed, with what its events had said, and
        tell it (unless its end was told: it ended, but could not be stored); False when it had ended meanwhile."""
        found = await history.get_run(self._db, run_id)
        if found is None or found[0].status not in unfinished.UNFINISHED_STATUSES:
            return False
        run = found[0]
        events = await self._held_events(run_id)
        content = "".join(event.delta for event in events if isinstance(event, ContentDelta)) or None
        end = events[-1] if events and isinstance(events[-1], TERMINAL) and not isinstance(events[-1], Paused) else None
        if isinstance(end, Failed):
            code, message = end.code, end.message  # as its followers were told
        elif end is not None:
            code, message = DB_UNAVAILABLE, NOT_STORED
        else:
            code, message = RUN_LOST, LOST
        if not await unfinished.store_lost(self._db, run_id, code, message, content):
            return False
        if end is not None:
            return True
        await self._tell(run, user_id, events)
        if run.status == "RUNNING" and (info := await self._broker.run_info(run_id)) is not None and info.instance_id:
            # Its instance went away: the runs it had taken into this session's line go with it, before anyone
            # else starts them (its own lease may outlive the run's for a moment).
            for queued in await unfinished.queued_runs(self._db, run.session_id):
                if queued.queued_by == info.instance_id:
                    await self.settle(queued.start.run_id, queued.start.user_id)
        return True

    async def _held_events(self, run_id: str) -> list[Event]:
        try:
            return await self._broker.held_events(run_id)
        except Exception:
            log.warning("run %s: could not read its events", run_id, exc_info=True)
            return []

    async def _tell(self, run: RunRecord, user_id: str, events: list[Event]) -> None:
        """Its followers hear `RunFailed` `RUN_LOST` next in its numbering, its session is freed, and the user's
        other tabs see the session change."""
        info = RunInfo.of_record(run, user_id)
        try:
            if events or run.next_index is not None:
                index = events[-1].index + 1 if events else run.next_index or 0
                failed = Failed(
                    run_id=run.id,
                    session_id=run.session_id,
                    index=index,
                    created_at=time.time(),
                    message=LOST,
                    code=RUN_LOST,
                )
                await self._broker.append(run.id, [failed])
            await self._broker.release(info)
            await self._broker.seal(run.id)
            await self._broker.clear_pending_name(run.session_id)
            await self._broker.publish_change(
                SessionChange(kind="UPDATED", user_id=user_id, session_id=run.session_id, run_id=run.id)
            )
        except Exception:
            log.warning("run %s: stored as lost, but could not tell its followers", run.id, exc_info=True)

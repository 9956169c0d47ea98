"""Runs as the API sees them: start one and follow it, continue a paused one, follow or replay one, read one,
cancel one."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator, Awaitable, Sequence
from functools import partial
from typing import Any
from uuid import uuid4

from agno.agent import Agent

from agno_graphql.agents.broker import GOING, RunBroker, RunInfo, SessionChange
from agno_graphql.agents.events import replay_stored_run
from agno_graphql.agents.pauses import answer_requirements
from agno_graphql.agents.registry import AgentRegistry, AgentSpec
from agno_graphql.agents.runner import (
    CANCELLED_BY_USER,
    CLIENT_LEFT,
    INTERRUPTED,
    SESSION_DELETED,
    PausedRun,
    RunExtras,
    RunManager,
)
from agno_graphql.db import history, unfinished
from agno_graphql.db.database import Database
from agno_graphql.db.unfinished import UNFINISHED_STATUSES
from agno_graphql.errors import BadUserInput, EventsExpired, NotFound, RunNotPaused, SessionBusy
from agno_graphql.records import (
    ATTACHMENTS_KEY,
    AttachmentRecord,
    Cancelled,
    Event,
    Failed,
    MessageRecord,
    Queued,
    RequirementAnswer,
    RunRecord,
    RunStart,
)
from agno_graphql.services.answers import check_answers
from agno_graphql.services.attachments import AttachmentService
from agno_graphql.services.checks import check_id, check_length, plausible_id
from agno_graphql.services.recovery import LostRuns
from agno_graphql.services.sessions import SessionService

NEW_MESSAGE_SENT = "A new message was sent."
# What `ifBusy` may say (schema.enums.BusyPolicy).
REJECT, INTERRUPT, ENQUEUE = "REJECT", "INTERRUPT", "ENQUEUE"
# How often a run waiting in line looks whether it started, should it have missed the change that tells it.
LINE_LOOK_SECONDS = 2.0


class RunService:
    def __init__(
        self,
        db: Database,
        agents: AgentRegistry,
        sessions: SessionService,
        broker: RunBroker,
        manager: RunManager,
        lost: LostRuns,
        attachments: AttachmentService,
        max_message_chars: int,
        max_queued_per_session: int = 5,
    ) -> None:
        self._db = db
        self._lost = lost
        self._attachments = attachments
        self._agents = agents
        self._sessions = sessions
        self._broker = broker
        self._manager = manager
        self._max_message_chars = max_message_chars
        self._max_queued_per_session = max_queued_per_session
        self._background: set[asyncio.Future[None]] = set()

    async def start(
        self,
        user_id: str,
        agent_id: str,
        session_id: str | None,
        message: str,
        *,
        cancel_on_disconnect: bool = False,
        if_busy: str = REJECT,
        attachments: Sequence[str] = (),
    ) -> AsyncIterator[Event]:
        """Start a run and follow it, with the attachments the message sends. The run goes on if the follower
        leaves, unless asked otherwise. While a run goes in the session, `if_busy` says what happens: REJECT
        (SESSION_BUSY), INTERRUPT (that run is cancelled, staying in the model's history, and this one starts next)
        or ENQUEUE (this one waits in line)."""
        agent, spec = self._agents.require(agent_id)
        self.check_message(message, with_attachments=bool(attachments))
        if session_id is not None:
            record = await self._sessions.require(user_id, session_id)
            if record.agent_id and record.agent_id != spec.id:
                raise BadUserInput("This session belongs to another agent.", argument="agentId")
            # Typing instead of answering, as in chat apps: the paused run gives way to the new message.
            paused = (await history.paused_runs(self._db, [session_id])).get(session_id)
            if paused is not None:
                await self.cancel_paused(user_id, paused, NEW_MESSAGE_SENT)
        sent = await self._attachments.check(user_id, session_id, attachments)
        if session_id is not None and if_busy == ENQUEUE and await unfinished.queued_runs(self._db, session_id):
            # Messages wait in line already: this one goes behind them, even if the session is free this moment.
            start = self._queued_start(user_id, spec.id, session_id, message, sent)
            return await self._wait_in_line(start, if_busy, cancel_on_disconnect)
        starting = self._start(agent, spec, user_id=user_id, session_id=session_id, message=message, sent=sent)
        try:
            info = await self.started(starting, cancel_on_disconnect)
        except SessionBusy:
            if session_id is None or if_busy == REJECT:
                raise
            start = self._queued_start(user_id, spec.id, session_id, message, sent)
            return await self._wait_in_line(start, if_busy, cancel_on_disconnect)
        return self.follow(info.run_id, cancel_on_disconnect)

    async def _start(
        self,
        agent: Agent,
        spec: AgentSpec,
        *,
        user_id: str,
        session_id: str | None,
        message: str,
        sent: Sequence[AttachmentRecord],
    ) -> RunInfo:
        def extra(session_id: str) -> RunExtras:
            return RunExtras(attachments=sent, prepare=partial(self._attachments.bind, user_id, session_id, sent))

        if session_id is not None:
            return await self._manager.start(
                agent, spec, user_id=user_id, session_id=session_id, message=message, extra=extra(session_id)
            )
        # Stored before the run, not by Agno at its end: a cancelled first run is then stored like any
        # other (Agno writes a cancelled run before its session, which MySQL's foreign key refuses),
        # and the user's other tabs can list the session at once.
        record = await self._sessions.create(user_id, spec.id)
        try:
            return await self._manager.start(
                agent, spec, user_id=user_id, session_id=record.id, message=message, extra=extra(record.id)
            )
        except Exception:
            # Not admitted (RATE_LIMITED, SHUTTING_DOWN, Redis down): the session made for it goes too.
            with contextlib.suppress(Exception):
                await self._sessions.delete(user_id, record.id)
            raise

    @staticmethod
    def _queued_start(
        user_id: str, agent_id: str, session_id: str, message: str, sent: Sequence[AttachmentRecord]
    ) -> RunStart:
        return RunStart(
            run_id=str(uuid4()),
            session_id=session_id,
            user_id=user_id,
            agent_id=agent_id,
            message=message,
            created_at=time.time(),
            metadata={ATTACHMENTS_KEY: [a.id for a in sent]} if sent else {},
            attachments=tuple(sent),
        )

    async def _wait_in_line(self, start: RunStart, if_busy: str, cancel_on_disconnect: bool) -> AsyncIterator[Event]:
        """Store the run PENDING in the session's line and follow it: RunQueued first (ENQUEUE), then the run once
        the runs before it have ended. INTERRUPT goes first in line and cancels the run going."""
        user_id, session_id = start.user_id, start.session_id
        await self._attachments.bind(user_id, session_id, start.attachments)
        ahead = if_busy == INTERRUPT
        queuing = asyncio.ensure_future(
            unfinished.store_queued(
                self._db, start, by=self._broker.instance_id, ahead=ahead, most=self._max_queued_per_session
            )
        )
        position = await asyncio.shield(queuing)
        if ahead:
            running = (await self._broker.active_runs([session_id])).get(session_id)
            if running is not None:
                await self._manager.cancel(running, INTERRUPTED)  # its end starts this one
        await self._announce(user_id, session_id, start.run_id, "UPDATED")
        # The run going may have ended before this one was in line: then nobody else starts it.
        await self._manager.start_next(session_id)
        queued = None if ahead else Queued(start.run_id, session_id, -1, time.time(), position)
        return self._follow_from_line(user_id, start.run_id, queued, cancel_on_disconnect)

    async def _follow_from_line(
        self, user_id: str, run_id: str, queued: Queued | None, cancel_on_disconnect: bool
    ) -> AsyncIterator[Event]:
        finished = False
        try:
            if queued is not None:
                yield queued
            async for event in self._from_line(user_id, run_id):
                yield event
            finished = True
        finally:
            if cancel_on_disconnect and not finished:
                with contextlib.suppress(NotFound):  # its session was deleted meanwhile
                    await self.cancel(user_id, run_id, CLIENT_LEFT)

    async def _from_line(self, user_id: str, run_id: str) -> AsyncIterator[Event]:
        """A run waiting in line, once it starts (its events from RunStarted on), or its end if it never does
        (cancelled, or lost with the instance that queued it): woken by the session changes that tell it, and
        looking again every while in case one was missed."""
        woken = asyncio.Event()

        async def listen() -> None:
            async for change in self._broker.changes(user_id):
                if change.run_id == run_id:
                    woken.set()

        listener = asyncio.create_task(listen())
        try:
            while True:
                info = await self._broker.run_info(run_id)
                if info is not None:
                    break
                found = await self.stored_run(user_id, run_id)
                if found is None:
                    yield Cancelled(run_id, "", 0, time.time(), reason=SESSION_DELETED, content=None)
                    return
                if found[0].status not in UNFINISHED_STATUSES:
                    end = replay_stored_run(found[0], found[1], "", "")[-1]
                    yield dataclasses.replace(end, index=0)
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(woken.wait(), timeout=LINE_LOOK_SECONDS)
                woken.clear()
        finally:
            listener.cancel()
        async for event in self._follow_or_replay(user_id, info, -1):
            yield event

    async def _announce(self, user_id: str, session_id: str, run_id: str, kind: str) -> None:
        change = SessionChange(kind=kind, user_id=user_id, session_id=session_id, run_id=run_id)
        with contextlib.suppress(Exception):
            await self._broker.publish_change(change)

    def check_message(self, message: str, with_attachments: bool = False) -> None:
        """A message has text, or attachments (a screenshot sent alone); never more than the limit."""
        if not message.strip() and not with_attachments:
            raise BadUserInput("`message` must not be empty (unless it sends attachments).", argument="message")
        check_length(message, "message", self._max_message_chars)

    async def continue_run(
        self, user_id: str, run_id: str, answers: Sequence[RequirementAnswer], *, cancel_on_disconnect: bool = False
    ) -> AsyncIterator[Event]:
        """Answer every open requirement of a paused run and follow the rest of it, from RunContinued on."""
        check_id(run_id, "runId")
        info = await self.live_info(user_id, run_id)
        found = await self.stored_run(user_id, run_id)
        if found is None:
            raise NotFound("Run not found.", runId=run_id)
        run = found[0]
        if (info is not None and not info.finished) or run.status != "PAUSED":
            raise RunNotPaused(f"The run is {_status(info, run)}, not paused.", runId=run_id)
        check_answers(run.requirements, answers)
        if run.next_index is None:
            raise SessionBusy("The run is still pausing; send the answers again in a moment.", runId=run_id)
        agent, spec = self._agents.require(run.agent_id)
        requirements, told = answer_requirements(await history.stored_requirements(self._db, run_id), answers)
        paused = PausedRun(
            run=RunInfo.of_record(run, user_id, first_index=run.next_index),
            requirements=requirements,
            answered_calls=told,
        )
        await self.started(self._manager.resume(agent, spec, paused), cancel_on_disconnect)
        return self.follow(run_id, cancel_on_disconnect, after_index=run.next_index - 1)

    async def cancel_paused(self, user_id: str, run: RunRecord, reason: str) -> bool:
        """Store a paused run CANCELLED and tell its followers and the user's other tabs; False if it was no
        longer paused (continued or cancelled meanwhile)."""
        if not await history.cancel_paused(self._db, run.id, reason):
            return False
        await self._tell_end(run, Cancelled, reason=reason, content=run.content)
        change = SessionChange(kind="UPDATED", user_id=user_id, session_id=run.session_id, run_id=run.id)
        with contextlib.suppress(Exception):
            await self._broker.publish_change(change)
        return True

    async def live_info(self, user_id: str, run_id: str) -> RunInfo | None:
        """What the broker holds of a run (going, or ended a while ago); NOT_FOUND when it is another user's."""
        info = await self._broker.run_info(run_id)
        if info is not None and info.user_id != user_id:
            raise NotFound("Run not found.", runId=run_id)
        return info

    async def _tell_end(self, run: RunRecord, end: type[Cancelled | Failed], **fields: Any) -> None:
        """Append the end of a paused run that nobody drives to its log, where one is held, numbered on from the
        pause: a follower waiting past the pause hears it (the stored run tells the same once the log is gone)."""
        if run.next_index is None:
            return
        event = end(run_id=run.id, session_id=run.session_id, index=run.next_index, created_at=time.time(), **fields)
        with contextlib.suppress(Exception):
            await self._broker.append(run.id, [event])

    async def started(self, starting: Awaitable[RunInfo], cancel_on_disconnect: bool) -> RunInfo:
        """The run `starting` starts. Once asked, the run is started even if the client leaves meanwhile: a start
        cut half way would hold the session's lock, or leave a session made for the message without it."""
        future = asyncio.ensure_future(starting)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            future.add_done_callback(lambda started: self._abandoned_start(started, cancel_on_disconnect))
            raise

    def _abandoned_start(self, starting: asyncio.Future[RunInfo], cancel: bool) -> None:
        """The client that asked for this run left before it had started: the run goes on, unless the client
        asked for it to be cancelled then (onDisconnect: CANCEL). A refusal has nobody left to hear it."""
        if starting.cancelled() or starting.exception() is not None or not cancel:
            return
        cancelling = asyncio.ensure_future(self._manager.cancel(starting.result().run_id, CLIENT_LEFT))
        self._background.add(cancelling)
        cancelling.add_done_callback(self._background.discard)

    async def follow(self, run_id: str, cancel_on_disconnect: bool, after_index: int = -1) -> AsyncIterator[Event]:
        """A started run's events after `after_index` to its end; with `cancel_on_disconnect`, a follower that
        leaves first cancels it."""
        finished = False
        try:
            async for event in self._broker.follow(run_id, after_index):
                yield event
            finished = True
        finally:
            if cancel_on_disconnect and not finished:
                await self._manager.cancel(run_id, CLIENT_LEFT)

    async def events(self, user_id: str, run_id: str, after_index: int | None) -> AsyncIterator[Event]:
        """A run's events after `after_index`, live until its end; from the stored run once they expired."""
        check_id(run_id, "runId")
        after = -1 if after_index is None else after_index
        if after < -1:
            raise BadUserInput("`afterIndex` must be -1 or more.", argument="afterIndex")
        info = await self.live_info(user_id, run_id)
        if info is None:
            found = await self.stored_run(user_id, run_id)
            if found is not None and found[0].status == "PENDING":
                return self._after(self._from_line(user_id, run_id), after)
            return await self._replay(user_id, run_id, after)
        return self._follow_or_replay(user_id, info, after)

    @staticmethod
    async def _after(events: AsyncIterator[Event], after: int) -> AsyncIterator[Event]:
        async for event in events:
            if event.index > after:
                yield event

    async def _follow_or_replay(self, user_id: str, info: RunInfo, after: int) -> AsyncIterator[Event]:
        try:
            async for event in self._broker.follow(info.run_id, after):
                yield event
                after = event.index
            return
        except EventsExpired:
            # Only a run that has ended can be told from what is stored.
            if not (info := await self._broker.run_info(info.run_id) or info).finished:
                raise
        async for event in await self._replay(user_id, info.run_id, after):
            yield event

    async def _replay(self, user_id: str, run_id: str, after: int) -> AsyncIterator[Event]:
        found = await self.stored_run(user_id, run_id)
        if found is None:
            raise NotFound("Run not found.", runId=run_id)
        run, messages = found
        spec = self._agents.spec(run.agent_id)
        events = replay_stored_run(
            run, messages, spec.model_provider if spec else "unknown", spec.model_id if spec else "unknown"
        )
        if after >= 0:
            # The live numbering is gone with the buffer: end the follower's run with the terminal event,
            # next in its numbering, carrying the whole content.
            terminal = events[-1]
            events = [dataclasses.replace(terminal, index=after + 1)]
        return _iterate(events)

    async def stored_run(self, user_id: str, run_id: str) -> tuple[RunRecord, list[MessageRecord]] | None:
        found = await history.get_run(self._db, run_id)
        if found is None or await self._sessions.get(user_id, found[0].session_id) is None:
            return None
        return found

    async def get(self, user_id: str, run_id: str) -> RunRecord | None:
        """A run of the viewer's: RUNNING while it goes, then as stored."""
        if not plausible_id(run_id):
            return None
        info = await self._broker.run_info(run_id)
        if info is not None and info.user_id != user_id:
            return None
        if info is not None and not info.finished:
            return _running(info)
        found = await self.stored_run(user_id, run_id)
        if found is None:
            return None
        run = found[0]
        if run.status == "RUNNING" and await self._broker.run_state(run_id) != GOING:
            # Stored as it started, by a server that went away before it ended (or could not store its end).
            await self._lost.settle(run_id, user_id)
            found = await self.stored_run(user_id, run_id)
            return found[0] if found is not None else None
        return run

    async def active(self, user_id: str, session_ids: Sequence[str]) -> list[RunRecord | None]:
        """The run going in each session, or else the one waiting there for answers, when it is the viewer's
        (for a DataLoader: the sessions are the viewer's)."""
        active = await self._broker.active_runs(session_ids)
        idle = [session_id for session_id in session_ids if session_id not in active]
        paused = await history.paused_runs(self._db, idle)
        out: list[RunRecord | None] = []
        for session_id in session_ids:
            run_id = active.get(session_id)
            info = await self._broker.run_info(run_id) if run_id else None
            if info is not None and info.user_id == user_id:
                out.append(_running(info))
            else:
                out.append(paused.get(session_id))
        return out

    async def cancel(self, user_id: str, run_id: str, reason: str = CANCELLED_BY_USER) -> RunRecord:
        """Cancel a run of the viewer's (going, paused or waiting in line) and wait until it is stored; a finished
        run is returned as it is."""
        check_id(run_id, "runId")
        run = await self.get(user_id, run_id)
        if run is not None and run.status == "PENDING":
            if await unfinished.cancel_queued(self._db, run_id, reason):
                await self._announce(user_id, run.session_id, run_id, "UPDATED")  # wakes its follower
            run = await self.get(user_id, run_id)  # or it has just started: then it is stopped below
        info = await self.live_info(user_id, run_id)
        if info is not None and not info.finished:
            await self._manager.stop(run_id, reason)
            run = await self.get(user_id, run_id)
        if run is not None and run.status == "PAUSED" and await self.cancel_paused(user_id, run, reason):
            run = await self.get(user_id, run_id)
        if run is None:
            raise NotFound("Run not found.", runId=run_id)
        return run


def _status(info: RunInfo | None, run: RunRecord) -> str:
    return "running" if info is not None and not info.finished else run.status.lower()


def _running(info: RunInfo) -> RunRecord:
    return RunRecord(
        id=info.run_id,
        session_id=info.session_id,
        agent_id=info.agent_id,
        run_index=-1,
        status="RUNNING",
        input=info.input,
        content=None,
        created_at=int(info.created_at),
    )


async def _iterate(events: Sequence[Event]) -> AsyncIterator[Event]:
    for event in events:
        yield event

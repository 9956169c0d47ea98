"""Runs as the API sees them: start one and follow it, follow or replay one, read one, cancel one."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Sequence

from agno.agent import Agent

from agno_graphql.agents.broker import RunBroker, RunInfo
from agno_graphql.agents.events import replay_stored_run
from agno_graphql.agents.registry import AgentRegistry, AgentSpec
from agno_graphql.agents.runner import CANCELLED_BY_USER, CLIENT_LEFT, RunManager
from agno_graphql.db import history
from agno_graphql.db.database import Database
from agno_graphql.errors import BadUserInput, EventsExpired, NotFound
from agno_graphql.records import Event, MessageRecord, RunRecord
from agno_graphql.services.checks import check_id, plausible_id
from agno_graphql.services.sessions import SessionService


class RunService:
    def __init__(
        self,
        db: Database,
        agents: AgentRegistry,
        sessions: SessionService,
        broker: RunBroker,
        manager: RunManager,
        max_message_chars: int,
    ) -> None:
        self._db = db
        self._agents = agents
        self._sessions = sessions
        self._broker = broker
        self._manager = manager
        self._max_message_chars = max_message_chars
        self._background: set[asyncio.Future[None]] = set()

    async def start(
        self, user_id: str, agent_id: str, session_id: str | None, message: str, *, cancel_on_disconnect: bool = False
    ) -> AsyncIterator[Event]:
        """Start a run and follow it. The run goes on if the follower leaves, unless asked otherwise."""
        agent, spec = self._agents.require(agent_id)
        if not message.strip():
            raise BadUserInput("`message` must not be empty.", argument="message")
        if len(message) > self._max_message_chars:
            raise BadUserInput(f"`message` is longer than {self._max_message_chars} characters.", argument="message")
        if session_id is not None:
            record = await self._sessions.require(user_id, session_id)
            if record.agent_id and record.agent_id != spec.id:
                raise BadUserInput("This session belongs to another agent.", argument="agentId")
        # Once asked, the run is started even if the client leaves meanwhile: a start cut half way would hold
        # the session's lock, or leave a session made for the message without it.
        starting = asyncio.ensure_future(
            self._start(agent, spec, user_id=user_id, session_id=session_id, message=message)
        )
        try:
            info = await asyncio.shield(starting)
        except asyncio.CancelledError:
            starting.add_done_callback(lambda started: self._abandoned_start(started, cancel_on_disconnect))
            raise
        return self._follow(info.run_id, cancel_on_disconnect)

    async def _start(
        self, agent: Agent, spec: AgentSpec, *, user_id: str, session_id: str | None, message: str
    ) -> RunInfo:
        if session_id is not None:
            return await self._manager.start(agent, spec, user_id=user_id, session_id=session_id, message=message)
        # Stored before the run, not by Agno at its end: a cancelled first run is then stored like any
        # other (Agno writes a cancelled run before its session, which MySQL's foreign key refuses),
        # and the user's other tabs can list the session at once.
        record = await self._sessions.create(user_id, spec.id)
        try:
            return await self._manager.start(agent, spec, user_id=user_id, session_id=record.id, message=message)
        except Exception:
            # Not admitted (RATE_LIMITED, SHUTTING_DOWN, Redis down): the session made for it goes too.
            with contextlib.suppress(Exception):
                await self._sessions.delete(user_id, record.id)
            raise

    def _abandoned_start(self, starting: asyncio.Future[RunInfo], cancel: bool) -> None:
        """The client that asked for this run left before it had started: the run goes on, unless the client
        asked for it to be cancelled then (onDisconnect: CANCEL). A refusal has nobody left to hear it."""
        if starting.cancelled() or starting.exception() is not None or not cancel:
            return
        cancelling = asyncio.ensure_future(self._manager.cancel(starting.result().run_id, CLIENT_LEFT))
        self._background.add(cancelling)
        cancelling.add_done_callback(self._background.discard)

    async def _follow(self, run_id: str, cancel_on_disconnect: bool) -> AsyncIterator[Event]:
        finished = False
        try:
            async for event in self._broker.follow(run_id, -1):
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
        info = await self._broker.run_info(run_id)
        if info is not None and info.user_id != user_id:
            raise NotFound("Run not found.", runId=run_id)
        if info is None:
            return await self._replay(user_id, run_id, after)
        return self._follow_or_replay(user_id, info, after)

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
        found = await self._stored_run(user_id, run_id)
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

    async def _stored_run(self, user_id: str, run_id: str) -> tuple[RunRecord, list[MessageRecord]] | None:
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
        found = await self._stored_run(user_id, run_id)
        return found[0] if found is not None else None

    async def active(self, user_id: str, session_ids: Sequence[str]) -> list[RunRecord | None]:
        """The run going in each session, when it is the viewer's (for a DataLoader)."""
        active = await self._broker.active_runs(session_ids)
        out: list[RunRecord | None] = []
        for session_id in session_ids:
            run_id = active.get(session_id)
            info = await self._broker.run_info(run_id) if run_id else None
            out.append(_running(info) if info is not None and info.user_id == user_id else None)
        return out

    async def cancel(self, user_id: str, run_id: str) -> RunRecord:
        """Cancel a run of the viewer's and wait until it is stored; a finished run is returned as it is."""
        check_id(run_id, "runId")
        info = await self._broker.run_info(run_id)
        if info is not None and info.user_id != user_id:
            raise NotFound("Run not found.", runId=run_id)
        if info is not None and not info.finished:
            await self._manager.stop(run_id, CANCELLED_BY_USER)
        run = await self.get(user_id, run_id)
        if run is None:
            raise NotFound("Run not found.", runId=run_id)
        return run


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

"""The domain calls the API makes, with settings applied: no GraphQL in here.

Every method that touches a session takes the acting user's id, and treats a
session of someone else exactly as a missing one.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator, Sequence
from uuid import uuid4

from agno_graphql.agents.broker import RunInfo, SessionChange
from agno_graphql.agents.events import Event, Failed, replay_stored_run
from agno_graphql.agents.registry import AgentRegistry, AgentSpec
from agno_graphql.agents.runner import CANCELLED_BY_USER, CLIENT_LEFT, SESSION_DELETED, RunManager
from agno_graphql.auth import TokenVerifier
from agno_graphql.db import history, sessions
from agno_graphql.db.database import Database
from agno_graphql.db.history import MessageRecord, RunRecord
from agno_graphql.db.pagination import Page, PageRequest, page_request
from agno_graphql.db.sessions import SessionOrdering, SessionRecord
from agno_graphql.errors import DB_UNAVAILABLE, BadUserInput, EventsExpired, NotFound
from agno_graphql.settings import Settings

log = logging.getLogger(__name__)

MAX_ID_CHARS = 128
MAX_NAME_CHARS = 200


def _check_id(value: str, argument: str) -> str:
    if not value or len(value) > MAX_ID_CHARS or not value.isprintable():
        raise BadUserInput(f"`{argument}` must be 1 to {MAX_ID_CHARS} printable characters.", argument=argument)
    return value


def _check_name(name: str) -> str:
    cleaned = " ".join(name.split())
    if not cleaned or len(cleaned) > MAX_NAME_CHARS:
        raise BadUserInput(f"`name` must be 1 to {MAX_NAME_CHARS} characters.", argument="name")
    return cleaned


class Services:
    def __init__(
        self, settings: Settings, db: Database, registry: AgentRegistry, runs: RunManager, verifier: TokenVerifier
    ) -> None:
        self.settings = settings
        self.db = db
        self.registry = registry
        self.runs = runs
        self.verifier = verifier
        self._background: set[asyncio.Future[None]] = set()
        runs.after_run = self._after_run
        runs.store_run = self._store_run

    def _page(
        self,
        kind: str,
        key_types: Sequence[type],
        first: int | None,
        after: str | None,
        last: int | None,
        before: str | None,
    ) -> PageRequest:
        return page_request(
            kind,
            key_types,
            first=first,
            after=after,
            last=last,
            before=before,
            default_size=self.settings.page_size_default,
            max_size=self.settings.page_size_max,
        )

    def agent(self, agent_id: str) -> AgentSpec | None:
        return self.registry.spec(agent_id)

    def agents(self) -> list[AgentSpec]:
        return self.registry.specs()

    def require_agent(self, agent_id: str) -> AgentSpec:
        spec = self.registry.spec(agent_id)
        if spec is None:
            raise NotFound("Agent not found.", agentId=agent_id)
        return spec

    async def list_sessions(
        self,
        user_id: str,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
        agent_id: str | None = None,
        ordering: tuple[str, bool] = ("updated_at", True),
        with_titles: bool = False,
    ) -> Page[SessionRecord]:
        """A page of the user's sessions; `with_titles` reads each one's first message in the same statement."""
        request = self._page(sessions.session_cursor_kind(ordering[0]), (int, str), first, after, last, before)
        order = SessionOrdering(field=ordering[0], descending=ordering[1])
        return await sessions.list_sessions(
            self.db, user_id, request, agent_id=agent_id, ordering=order, with_titles=with_titles
        )

    async def session(self, user_id: str, session_id: str) -> SessionRecord | None:
        if not session_id or len(session_id) > MAX_ID_CHARS:
            return None
        return await sessions.get_session(self.db, user_id, session_id)

    async def create_session(
        self, user_id: str, agent_id: str, name: str | None, session_id: str | None
    ) -> SessionRecord:
        self.require_agent(agent_id)
        new_id = _check_id(session_id, "sessionId") if session_id is not None else str(uuid4())
        clean_name = _check_name(name) if name is not None else None
        record = await sessions.create_session(self.db, user_id, agent_id, new_id, clean_name)
        await self._announce("CREATED", user_id, record.id)
        return record

    async def rename_session(self, user_id: str, session_id: str, name: str) -> SessionRecord:
        clean_name = _check_name(name)
        record = await sessions.rename_session(self.db, user_id, session_id, clean_name)
        running = (await self.runs.broker.active_runs([session_id])).get(session_id)
        if running is not None:
            # Agno writes the session row as it read it when the run started: name it again afterwards.
            await self.runs.broker.set_pending_name(session_id, running, clean_name)
        else:
            await self.runs.broker.clear_pending_name(session_id)
        await self._announce("RENAMED", user_id, session_id)
        return record

    async def delete_session(self, user_id: str, session_id: str) -> str:
        """Delete the session and its runs; a run still going is stopped first, or it would write the session back."""
        if await self.session(user_id, session_id) is None:
            raise NotFound("Session not found.", sessionId=session_id)
        running = (await self.runs.broker.active_runs([session_id])).get(session_id)
        if running is not None:
            await self.runs.stop(running, SESSION_DELETED)
        await sessions.delete_session(self.db, user_id, session_id)
        await self.runs.broker.clear_pending_name(session_id)
        await self._announce("DELETED", user_id, session_id)
        return session_id

    async def _announce(self, kind: str, user_id: str, session_id: str) -> None:
        """Tell the user's other tabs; the change is made and stored either way, so a failure is only logged."""
        try:
            await self.runs.broker.publish_change(SessionChange(kind=kind, user_id=user_id, session_id=session_id))
        except Exception:
            log.warning("could not publish a session change (%s %s)", kind, session_id, exc_info=True)

    async def _store_run(self, run: RunInfo) -> bool:
        """Once the run has ended: True when it is stored as it ended (Agno's writes are retried for a while
        if the database was down); False makes the run end with DB_UNAVAILABLE."""
        return await self.db.store_unsaved(run.run_id, run.session_id, self.settings.store_retry_seconds)

    async def _after_run(self, run: RunInfo, terminal: Event | None) -> None:
        """Once Agno has stored the run: put back a name given during it; mark a timed-out run failed."""
        name = await self.runs.broker.take_pending_name(run.session_id, run.run_id)
        if name is not None:
            await sessions.rename_session(self.db, run.user_id, run.session_id, name)
        if isinstance(terminal, Failed) and terminal.code != DB_UNAVAILABLE:
            await history.record_failure(self.db, run.run_id, terminal.code, terminal.message)

    async def session_messages(
        self,
        session_id: str,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
        roles: Sequence[str] | None = None,
    ) -> Page[MessageRecord]:
        """Messages of a session the caller already holds (ownership checked when it was read)."""
        request = self._page(history.MESSAGE_CURSOR, (int, int), first, after, last, before)
        return await history.list_messages(
            self.db, session_id, request, history.DEFAULT_ROLES if roles is None else roles
        )

    async def session_runs(
        self,
        session_id: str,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Page[RunRecord]:
        request = self._page(history.RUN_CURSOR, (int,), first, after, last, before)
        return await history.list_runs(self.db, session_id, request)

    async def run_counts(self, session_ids: Sequence[str]) -> list[int]:
        counts = await history.run_counts(self.db, session_ids)
        return [counts.get(session_id, 0) for session_id in session_ids]

    async def session_titles(self, session_ids: Sequence[str]) -> list[str | None]:
        inputs = await history.first_inputs(self.db, session_ids)
        return [sessions.short_name(inputs.get(session_id)) for session_id in session_ids]

    async def run_agent(
        self, user_id: str, agent_id: str, session_id: str | None, message: str, cancel_on_disconnect: bool = False
    ) -> AsyncIterator[Event]:
        """Start a run and follow it. The run goes on if the follower leaves, unless asked otherwise."""
        spec = self.require_agent(agent_id)
        if not message.strip():
            raise BadUserInput("`message` must not be empty.", argument="message")
        if len(message) > self.settings.max_message_chars:
            raise BadUserInput(
                f"`message` is longer than {self.settings.max_message_chars} characters.", argument="message"
            )
        if session_id is not None:
            record = await self.session(user_id, session_id)
            if record is None:
                raise NotFound("Session not found.", sessionId=session_id)
            if record.agent_id and record.agent_id != spec.id:
                raise BadUserInput("This session belongs to another agent.", argument="agentId")
        # Once asked, the run is started even if the client leaves meanwhile: a start cut half way would hold
        # the session's lock, or leave a session made for the message without it.
        starting = asyncio.ensure_future(self._start_run(user_id, spec, session_id, message))
        try:
            info = await asyncio.shield(starting)
        except asyncio.CancelledError:
            starting.add_done_callback(lambda started: self._abandoned_start(started, cancel_on_disconnect))
            raise
        return self._follow(info.run_id, -1, cancel_on_disconnect)

    async def _start_run(self, user_id: str, spec: AgentSpec, session_id: str | None, message: str) -> RunInfo:
        agent = self.registry.get(spec.id)
        assert agent is not None
        if session_id is not None:
            return await self.runs.start(agent, spec, user_id, session_id, message)
        # Stored before the run, not by Agno at its end: a cancelled first run is then stored like any
        # other (Agno writes a cancelled run before its session, which MySQL's foreign key refuses),
        # and the user's other tabs can list the session at once.
        record = await self.create_session(user_id, spec.id, None, None)
        try:
            return await self.runs.start(agent, spec, user_id, record.id, message)
        except Exception:
            # Not admitted (RATE_LIMITED, SHUTTING_DOWN, Redis down): the session made for it goes too.
            with contextlib.suppress(Exception):
                await self.delete_session(user_id, record.id)
            raise

    def _abandoned_start(self, starting: asyncio.Future[RunInfo], cancel: bool) -> None:
        """The client that asked for this run left before it had started: the run goes on, unless the client
        asked for it to be cancelled then (onDisconnect: CANCEL). A refusal has nobody left to hear it."""
        if starting.cancelled() or starting.exception() is not None or not cancel:
            return
        cancelling = asyncio.ensure_future(self.runs.cancel(starting.result().run_id, CLIENT_LEFT))
        self._background.add(cancelling)
        cancelling.add_done_callback(self._background.discard)

    async def _follow(self, run_id: str, after_index: int, cancel_on_disconnect: bool) -> AsyncIterator[Event]:
        finished = False
        try:
            async for event in self.runs.broker.follow(run_id, after_index):
                yield event
            finished = True
        finally:
            if cancel_on_disconnect and not finished:
                await self.runs.cancel(run_id, CLIENT_LEFT)

    async def run_events(self, user_id: str, run_id: str, after_index: int | None) -> AsyncIterator[Event]:
        """A run's events after `after_index`, live until its end; from the stored run once they expired."""
        _check_id(run_id, "runId")
        after = -1 if after_index is None else after_index
        if after < -1:
            raise BadUserInput("`afterIndex` must be -1 or more.", argument="afterIndex")
        info = await self.runs.broker.run_info(run_id)
        if info is not None and info.user_id != user_id:
            raise NotFound("Run not found.", runId=run_id)
        if info is None:
            return await self._replay(user_id, run_id, after)
        return self._follow_or_replay(user_id, info, after)

    async def _follow_or_replay(self, user_id: str, info: RunInfo, after: int) -> AsyncIterator[Event]:
        try:
            async for event in self.runs.broker.follow(info.run_id, after):
                yield event
                after = event.index
            return
        except EventsExpired:
            # Only a run that has ended can be told from what is stored.
            if not (info := await self.runs.broker.run_info(info.run_id) or info).finished:
                raise
        async for event in await self._replay(user_id, info.run_id, after):
            yield event

    async def _replay(self, user_id: str, run_id: str, after: int) -> AsyncIterator[Event]:
        found = await self._stored_run(user_id, run_id)
        if found is None:
            raise NotFound("Run not found.", runId=run_id)
        run, messages = found
        spec = self.registry.spec(run.agent_id)
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
        found = await history.get_run(self.db, run_id)
        if found is None or await self.session(user_id, found[0].session_id) is None:
            return None
        return found

    async def run(self, user_id: str, run_id: str) -> RunRecord | None:
        """A run of the viewer's: RUNNING while it goes, then as stored."""
        if not run_id or len(run_id) > MAX_ID_CHARS:
            return None
        info = await self.runs.broker.run_info(run_id)
        if info is not None and info.user_id != user_id:
            return None
        if info is not None and not info.finished:
            return _running(info)
        found = await self._stored_run(user_id, run_id)
        return found[0] if found is not None else None

    async def active_runs(self, user_id: str, session_ids: Sequence[str]) -> list[RunRecord | None]:
        active = await self.runs.broker.active_runs(session_ids)
        out: list[RunRecord | None] = []
        for session_id in session_ids:
            run_id = active.get(session_id)
            info = await self.runs.broker.run_info(run_id) if run_id else None
            out.append(_running(info) if info is not None and info.user_id == user_id else None)
        return out

    async def cancel_run(self, user_id: str, run_id: str) -> RunRecord:
        """Cancel a run of the viewer's and wait until it is stored; a finished run is returned as it is."""
        _check_id(run_id, "runId")
        info = await self.runs.broker.run_info(run_id)
        if info is not None and info.user_id != user_id:
            raise NotFound("Run not found.", runId=run_id)
        if info is not None and not info.finished:
            await self.runs.stop(run_id, CANCELLED_BY_USER)
        run = await self.run(user_id, run_id)
        if run is None:
            raise NotFound("Run not found.", runId=run_id)
        return run

    def session_changes(self, user_id: str) -> AsyncIterator[SessionChange]:
        return self.runs.broker.changes(user_id)


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

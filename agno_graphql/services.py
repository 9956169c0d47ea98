"""The domain calls the API makes, with settings applied: no GraphQL in here.

Every method that touches a session takes the acting user's id, and treats a
session of someone else exactly as a missing one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from uuid import uuid4

from agno_graphql.agents.events import Event
from agno_graphql.agents.registry import AgentRegistry, AgentSpec
from agno_graphql.agents.runner import SESSION_DELETED, RunHandle, RunManager
from agno_graphql.auth import TokenVerifier
from agno_graphql.db import history, sessions
from agno_graphql.db.database import Database
from agno_graphql.db.history import MessageRecord, RunRecord
from agno_graphql.db.pagination import Page, PageRequest, page_request
from agno_graphql.db.sessions import SessionOrdering, SessionRecord
from agno_graphql.errors import BadUserInput, NotFound
from agno_graphql.settings import Settings

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
    ) -> Page[SessionRecord]:
        request = self._page(sessions.session_cursor_kind(ordering[0]), (int, str), first, after, last, before)
        order = SessionOrdering(field=ordering[0], descending=ordering[1])
        return await sessions.list_sessions(self.db, user_id, request, agent_id=agent_id, ordering=order)

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
        return await sessions.create_session(self.db, user_id, agent_id, new_id, clean_name)

    async def rename_session(self, user_id: str, session_id: str, name: str) -> SessionRecord:
        clean_name = _check_name(name)
        record = await sessions.rename_session(self.db, user_id, session_id, clean_name)
        running = self.runs.active_in_session(session_id)
        if running is not None:
            # Agno writes the session row as it read it when the run started: name it again afterwards.
            running.after_run.append(lambda: sessions.rename_session(self.db, user_id, session_id, clean_name))
        return record

    async def delete_session(self, user_id: str, session_id: str) -> str:
        """Delete the session and its runs; a run still going is stopped first, or it would write the session back."""
        if await self.session(user_id, session_id) is None:
            raise NotFound("Session not found.", sessionId=session_id)
        running = self.runs.active_in_session(session_id)
        if running is not None:
            await self.runs.stop(running, SESSION_DELETED)
        await sessions.delete_session(self.db, user_id, session_id)
        return session_id

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
        self, user_id: str, agent_id: str, session_id: str | None, message: str
    ) -> AsyncIterator[Event]:
        """Start a run and follow it; if the follower leaves early, the run is cancelled and stored."""
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
        else:
            await self.db.ensure_ready()
            session_id = str(uuid4())
        agent = self.registry.get(spec.id)
        assert agent is not None
        handle = self.runs.start(agent, spec, user_id, session_id, message)
        return self._follow(handle)

    async def _follow(self, handle: RunHandle) -> AsyncIterator[Event]:
        try:
            async for event in handle.follow():
                yield event
        finally:
            if not handle.finished:
                await self.runs.cancel(handle)

"""The viewer's sessions: list, read, create, rename, delete, and their changes as they happen.

Every method takes the acting user's id, and treats a session of someone else exactly as a missing one.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from uuid import uuid4

from agno_graphql.agents.broker import RunBroker, SessionChange
from agno_graphql.agents.registry import AgentRegistry
from agno_graphql.agents.runner import SESSION_DELETED, RunManager
from agno_graphql.db import conversation, history, sessions, unfinished
from agno_graphql.db.database import Database
from agno_graphql.db.pagination import Page, PageLimits, page_request
from agno_graphql.errors import BadUserInput, NotFound
from agno_graphql.records import PageArgs, SessionOrdering, SessionRecord
from agno_graphql.services.attachments import AttachmentService
from agno_graphql.services.checks import check_id, check_name, plausible_id

log = logging.getLogger(__name__)

COPY_SUFFIX = " (copy)"


class SessionService:
    def __init__(
        self,
        db: Database,
        agents: AgentRegistry,
        broker: RunBroker,
        runs: RunManager,
        limits: PageLimits,
        attachments: AttachmentService,
    ) -> None:
        self._db = db
        self._attachments = attachments
        self._agents = agents
        self._broker = broker
        self._runs = runs
        self._limits = limits

    async def list(
        self,
        user_id: str,
        page: PageArgs,
        *,
        agent_id: str | None = None,
        ordering: SessionOrdering = SessionOrdering(),
        with_titles: bool = False,
    ) -> Page[SessionRecord]:
        """A page of the user's sessions; `with_titles` reads each one's first message in the same statement."""
        request = page_request(sessions.session_cursor_kind(ordering.field), (int, str), page, self._limits)
        return await sessions.list_sessions(
            self._db, user_id, request, agent_id=agent_id, ordering=ordering, with_titles=with_titles
        )

    async def get(self, user_id: str, session_id: str) -> SessionRecord | None:
        if not plausible_id(session_id):
            return None
        return await sessions.get_session(self._db, user_id, session_id)

    async def require(self, user_id: str, session_id: str) -> SessionRecord:
        record = await self.get(user_id, session_id)
        if record is None:
            raise NotFound("Session not found.", sessionId=session_id)
        return record

    async def create(
        self, user_id: str, agent_id: str, *, name: str | None = None, session_id: str | None = None
    ) -> SessionRecord:
        self._agents.require(agent_id)
        new_id = check_id(session_id, "sessionId") if session_id is not None else str(uuid4())
        clean_name = check_name(name) if name is not None else None
        record = await sessions.create_session(self._db, user_id, agent_id=agent_id, session_id=new_id, name=clean_name)
        await self._announce("CREATED", user_id, record.id)
        return record

    async def fork(
        self, user_id: str, session_id: str, *, up_to_message_id: str | None = None, name: str | None = None
    ) -> SessionRecord:
        """A new session of the user's, for the same agent, holding the conversation up to and including an
        assistant message (all of it without one); every copied run and message gets a new id."""
        source = await self.require(user_id, session_id)
        clean_name = check_name(name) if name is not None else None
        up_to: tuple[str, int] | None = None
        if up_to_message_id is not None:
            check_id(up_to_message_id, "upToMessageId")
            found = await conversation.run_of_message(self._db, user_id, up_to_message_id)
            if found is None or found[0].session_id != session_id:
                raise NotFound("Message not found in this session.", messageId=up_to_message_id)
            run, message = found
            if message.role != "assistant":
                raise BadUserInput("A fork ends at an assistant message.", argument="upToMessageId")
            if run.replaced:
                raise BadUserInput("This message is no longer in the conversation.", argument="upToMessageId")
            up_to = (run.id, message.position)
        if clean_name is None:
            titled = source.name or (await history.first_inputs(self._db, [session_id])).get(session_id)
            shortened = sessions.short_name(titled, sessions.NAME_MAX_CHARS - len(COPY_SUFFIX))
            clean_name = f"{shortened}{COPY_SUFFIX}" if shortened else None
        new_id = str(uuid4())
        runs = await conversation.forked_runs(self._db, session_id, new_id, up_to)
        record = await sessions.create_session(
            self._db, user_id, agent_id=source.agent_id, session_id=new_id, name=clean_name, runs=runs
        )
        await self._announce("CREATED", user_id, record.id)
        return record

    async def rename(self, user_id: str, session_id: str, name: str) -> SessionRecord:
        clean_name = check_name(name)
        record = await sessions.rename_session(self._db, user_id, session_id, clean_name)
        running = (await self._broker.active_runs([session_id])).get(session_id)
        if running is not None:
            # Agno writes the session row as it read it when the run started: name it again afterwards.
            await self._broker.set_pending_name(session_id, running, clean_name)
        else:
            await self._broker.clear_pending_name(session_id)
        await self._announce("RENAMED", user_id, session_id)
        return record

    async def delete(self, user_id: str, session_id: str) -> str:
        """Delete the session, its runs and its attachments' bytes; a run still going is stopped first, or it would
        write the session back."""
        await self.require(user_id, session_id)
        # The runs waiting in line go first, or the end of the run going would start the next.
        for queued in await unfinished.queued_runs(self._db, session_id):
            await unfinished.cancel_queued(self._db, queued.start.run_id, SESSION_DELETED)
        running = (await self._broker.active_runs([session_id])).get(session_id)
        if running is not None:
            await self._runs.stop(running, SESSION_DELETED)
        await sessions.delete_session(self._db, user_id, session_id)
        await self._attachments.delete_for_session(session_id)
        await self._broker.clear_pending_name(session_id)
        await self._announce("DELETED", user_id, session_id)
        return session_id

    def changes(self, user_id: str) -> AsyncIterator[SessionChange]:
        return self._broker.changes(user_id)

    async def _announce(self, kind: str, user_id: str, session_id: str) -> None:
        """Tell the user's other tabs; the change is made and stored either way, so a failure is only logged."""
        try:
            await self._broker.publish_change(SessionChange(kind=kind, user_id=user_id, session_id=session_id))
        except Exception:
            log.warning("could not publish a session change (%s %s)", kind, session_id, exc_info=True)

"""The conversation edited: a new answer to the latest user message (regenerate), a user message changed and
answered again (edit), and the answers to one user message (alternatives). A new run takes the place of the runs it
replaces, which stay stored, out of the conversation."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

from agno_graphql.agents.registry import AgentRegistry
from agno_graphql.agents.runner import RunExtras, RunManager
from agno_graphql.db import conversation, history
from agno_graphql.db.database import Database
from agno_graphql.errors import BadUserInput, NotFound, NotLatestRun, SessionBusy
from agno_graphql.records import AttachmentRecord, Event, RunRecord
from agno_graphql.services.attachments import AttachmentService
from agno_graphql.services.checks import check_id, check_length
from agno_graphql.services.runs import NEW_MESSAGE_SENT, RunService
from agno_graphql.services.sessions import SessionService


class EditService:
    def __init__(
        self,
        db: Database,
        agents: AgentRegistry,
        sessions: SessionService,
        runs: RunService,
        manager: RunManager,
        attachments: AttachmentService,
        max_message_chars: int,
    ) -> None:
        self._db = db
        self._attachments = attachments
        self._agents = agents
        self._sessions = sessions
        self._runs = runs
        self._manager = manager
        self._max_message_chars = max_message_chars

    async def regenerate(
        self, user_id: str, run_id: str, instructions: str | None, *, cancel_on_disconnect: bool = False
    ) -> AsyncIterator[Event]:
        """A new answer to the user message of a session's latest run, which leaves the conversation (kept, listed
        among the new run's alternatives); `instructions` are for this answer only."""
        check_id(run_id, "runId")
        if instructions is not None:
            check_length(instructions, "instructions", self._max_message_chars)
        info = await self._runs.live_info(user_id, run_id)
        if info is not None and not info.finished:
            raise SessionBusy("The run is still going; regenerate it once it has ended.", runId=run_id)
        found = await self._runs.stored_run(user_id, run_id)
        if found is None:
            raise NotFound("Run not found.", runId=run_id)
        run, messages = found
        # The same message again, with what it carried.
        sent = next((m.attachments for m in messages if m.role == "user"), ())
        if run.replaced:
            raise NotLatestRun("This run was replaced already; regenerate the latest run.", runId=run_id)

        async def still_latest(replacing: Sequence[RunRecord]) -> None:
            if [r.id for r in replacing] != [run.id]:
                raise NotLatestRun("Only the session's latest run can be regenerated.", runId=run_id)

        return await self._answer_again(
            user_id,
            run,
            run.input or "",
            still_latest,
            sent=sent,
            instructions=instructions,
            cancel_on_disconnect=cancel_on_disconnect,
        )

    async def edit_message(
        self,
        user_id: str,
        message_id: str,
        message: str,
        *,
        attachments: Sequence[str] = (),
        cancel_on_disconnect: bool = False,
    ) -> AsyncIterator[Event]:
        """Change a user message of the conversation and answer it again: its run and every later one leave the
        conversation (kept, replaced), and a new run answers the edited text, with the attachments given (those of
        the message to keep, new ones), with the history before it."""
        check_id(message_id, "messageId")
        self._runs.check_message(message, with_attachments=bool(attachments))
        found = await conversation.run_of_message(self._db, user_id, message_id)
        if found is None or await self._sessions.get(user_id, found[0].session_id) is None:
            raise NotFound("Message not found.", messageId=message_id)
        run, edited = found
        if edited.role != "user":
            raise BadUserInput("Only a user message can be edited.", argument="messageId")
        if run.replaced:
            raise BadUserInput("This message is no longer in the conversation.", argument="messageId")

        async def still_in_conversation(replacing: Sequence[RunRecord]) -> None:
            if not replacing or replacing[0].id != run.id:
                raise BadUserInput("This message is no longer in the conversation.", argument="messageId")

        sent = await self._attachments.check(user_id, run.session_id, attachments)
        return await self._answer_again(
            user_id, run, message, still_in_conversation, sent=sent, cancel_on_disconnect=cancel_on_disconnect
        )

    async def _answer_again(
        self,
        user_id: str,
        run: RunRecord,
        message: str,
        check: Callable[[Sequence[RunRecord]], Awaitable[None]],
        *,
        sent: Sequence[AttachmentRecord],
        instructions: str | None = None,
        cancel_on_disconnect: bool,
    ) -> AsyncIterator[Event]:
        """A new run in `run`'s session answering `message`, after `run` and every later run of the conversation
        leave it; `check` sees those runs, with the session held, and may refuse."""
        agent, spec = self._agents.require(run.agent_id)
        for later in await conversation.runs_from(self._db, run.session_id, run.run_index):
            if later.status == "PAUSED":
                await self._runs.cancel_paused(user_id, later, NEW_MESSAGE_SENT)

        async def take_their_place() -> None:
            # With the session held, so no run starts or ends meanwhile.
            replacing = await conversation.runs_from(self._db, run.session_id, run.run_index)
            await check(replacing)
            await self._attachments.bind(user_id, run.session_id, sent)
            if not await conversation.replace_runs(self._db, [r.id for r in replacing]):
                raise SessionBusy("A run of the session has not ended; try again once it has.", runId=run.id)

        extras = RunExtras(
            instructions=instructions or None,
            metadata={history.ANSWERS_TO_KEY: run.answers_to},
            prepare=take_their_place,
            attachments=sent,
        )
        starting = self._manager.start(
            agent, spec, user_id=user_id, session_id=run.session_id, message=message, extra=extras
        )
        info = await self._runs.started(starting, cancel_on_disconnect)
        return self._runs.follow(info.run_id, cancel_on_disconnect)

    async def alternatives(self, user_id: str, run: RunRecord) -> list[RunRecord]:
        """Every answer to the same user message as `run`, oldest first, itself included."""
        if run.status == "RUNNING" and run.run_index < 0:
            return [run]  # a run still going is not stored yet: its alternatives show once it is
        return await conversation.alternatives(self._db, run.session_id, run.answers_to)

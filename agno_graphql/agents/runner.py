"""Running an agent in a server task, and publishing its events through the broker.

A run belongs to the server, not to a socket: followers come and go (and may resume from another
instance), the run goes on until it ends, is cancelled, times out, or the server shuts down. Its
terminal event is published only after Agno has stored the run and the after-run steps are done, so a
follower that reads the session next sees the final state. When the database was down as the run ended,
storing it is retried for a while; a run that could not be stored ends with DB_UNAVAILABLE instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, Protocol
from uuid import uuid4

from agno.agent import Agent
from agno.exceptions import RunCancelledException
from agno.models.message import Message
from agno.run.cancel import cancellation_manager_explicitly_set, get_cancellation_manager, set_cancellation_manager
from agno.run.cancellation_management.in_memory_cancellation_manager import InMemoryRunCancellationManager
from opentelemetry.trace import Tracer

from agno_graphql.agents.broker import RunBroker, RunInfo, SessionChange
from agno_graphql.agents.events import EventTranslator, RunLabels
from agno_graphql.agents.media import RunMedia, run_media
from agno_graphql.agents.registry import AgentRegistry, AgentSpec
from agno_graphql.compat.agno_parts import agno_background_tasks
from agno_graphql.errors import DB_UNAVAILABLE, EventsExpired, RateLimited, RunNotPaused, SessionBusy, ShuttingDown
from agno_graphql.records import (
    TERMINAL,
    AttachmentRecord,
    ContentDelta,
    Event,
    Failed,
    Paused,
    RunStart,
    ToolCallRecord,
)
from agno_graphql.tracing import span

log = logging.getLogger(__name__)

CLIENT_LEFT = "The client disconnected."
CANCELLED_BY_USER = "Cancelled by the user."
SERVER_STOPPING = "The server is shutting down."
SESSION_DELETED = "The session was deleted."
# A run cancelled this way stays in the history the model is given (Agno would leave a cancelled run out).
INTERRUPTED = "Interrupted by a new message."
NOT_STORED = "The run could not be stored: the database is unavailable. Send the message again shortly."

# How long a run Agno has stopped gets to be stored (past the cancel grace) before its task is stopped all the
# same; and how long a stopped task waits for the write Agno then makes in a task of its own.
STORE_ALLOWANCE_SECONDS = 60.0


class RunSteps(Protocol):
    """What the run manager calls on the store: a run's row as it starts, taking a paused run for its continuation,
    and the steps once Agno has ended a run, before the session is free and the end is told."""

    async def store_start(self, start: RunStart) -> None:
        """Store the run as it starts, RUNNING with the user's message and its media (`start.media`, Agno's stored
        form of `RunMedia`); the run may not start if this fails."""

    async def claim_paused(self, run: RunInfo) -> bool:
        """Mark a paused run as going on, so it is continued once only; False if it is no longer paused."""

    async def first_in_line(self, session_id: str) -> RunStart | None:
        """The run waiting first in line in the session (`ifBusy: ENQUEUE`), if any."""

    async def take_from_line(self, run: RunInfo, media: Mapping[str, Any]) -> bool:
        """Mark a run that waited in line as going, its message now with its media, so it starts once only; False
        if it no longer waits."""

    async def store(self, run: RunInfo) -> bool:
        """Make sure the ended run is stored (retrying for a while); False if it is not."""

    async def after(self, run: RunInfo, terminal: Event | None) -> Event | None:
        """Steps once the run is stored (a name given meanwhile, a failure to note); an event to end the run with
        instead of `terminal` (a failure found only now), or None."""


@dataclass(frozen=True, slots=True)
class RunLimits:
    cancel_grace_seconds: float = 10.0
    run_timeout_seconds: float = 600.0
    # Content deltas closer together than this go out as one (0: each delta at once).
    coalesce_seconds: float = 0.0


@dataclass(frozen=True)
class RunExtras:
    """What a run may take besides its message: instructions for this answer only, metadata to store with it, and a
    step to take once its session is held (which may refuse the start by raising)."""

    instructions: str | None = None
    metadata: Mapping[str, Any] | None = None
    prepare: Callable[[], Awaitable[None]] | None = None
    attachments: Sequence[AttachmentRecord] = ()


@dataclass(frozen=True)
class PausedRun:
    """A paused run to continue, its numbering on from `run.first_index`, with Agno's requirements answered
    (`agents.pauses.answer_requirements`)."""

    run: RunInfo
    requirements: Sequence[Any]  # agno.run.requirement.RunRequirement, resolved
    # The answered calls Agno streams nothing for, told first: (call, result, failed).
    answered_calls: Sequence[tuple[ToolCallRecord, str | None, bool]] = ()


@dataclass
class LocalRun:
    """A run driven by this process."""

    info: RunInfo
    translator: EventTranslator
    task: asyncio.Task[None] | None = None
    # Translating and publishing happen under this lock, so a delayed flush of held content keeps its order.
    publishing: asyncio.Lock = field(default_factory=asyncio.Lock)
    last_delta_at: float = float("-inf")
    flush_timer: asyncio.TimerHandle | None = None


class HeededCancellations(InMemoryRunCancellationManager):
    """Agno's in-process cancellation manager, also telling which cancelled runs Agno has stopped.

    Agno stores a cancelled run after it stops it, inside its own handler: stopping the run's task then would
    cut that write and lose the run. Runs listed in `heeded` are past the point where Agno checks for a cancel.

    Its async methods take the same thread lock as the others (Agno's take an asyncio.Lock, which binds to the
    first event loop that waits on it and then fails in any other, and does not exclude the sync methods): each
    step is a dict update with no I/O, so holding a thread lock that briefly never blocks the loop.
    """

    def __init__(self) -> None:
        super().__init__()
        self.heeded: set[str] = set()

    def raise_if_cancelled(self, run_id: str) -> None:
        try:
            super().raise_if_cancelled(run_id)
        except RunCancelledException:
            self.heeded.add(run_id)
            raise

    async def araise_if_cancelled(self, run_id: str) -> None:
        self.raise_if_cancelled(run_id)

    def cleanup_run(self, run_id: str) -> None:
        super().cleanup_run(run_id)
        self.heeded.discard(run_id)

    async def acleanup_run(self, run_id: str) -> None:
        self.cleanup_run(run_id)

    async def aregister_run(self, run_id: str) -> None:
        self.register_run(run_id)

    async def acancel_run(self, run_id: str) -> bool:
        return self.cancel_run(run_id)

    async def ais_cancelled(self, run_id: str) -> bool:
        return self.is_cancelled(run_id)

    async def aget_active_runs(self) -> dict[str, bool]:
        return self.get_active_runs()

    async def aregister_member_run(self, team_run_id: str, member_run_id: str) -> None:
        self.register_member_run(team_run_id, member_run_id)

    async def aget_member_run_ids(self, team_run_id: str) -> set[str]:
        return self.get_member_run_ids(team_run_id)

    async def acleanup_member_runs(self, team_run_id: str) -> None:
        self.cleanup_member_runs(team_run_id)


def heeded_cancellations() -> HeededCancellations | None:
    """The process's cancellation manager, made one that tells heeded cancels unless the application chose
    another (then None: a run's task is stopped at the end of the grace period whatever Agno is doing)."""
    current = get_cancellation_manager()
    if isinstance(current, HeededCancellations):
        return current
    if cancellation_manager_explicitly_set():
        return None
    manager = HeededCancellations()
    set_cancellation_manager(manager)
    return manager


class RunManager:
    """Starts runs in tasks of their own, cancels them on request from any instance, ends them on shutdown."""

    def __init__(
        self,
        broker: RunBroker,
        steps: RunSteps,
        agents: AgentRegistry,
        limits: RunLimits = RunLimits(),
        tracer: Tracer | None = None,
    ) -> None:
        self._tracer = tracer
        self.broker = broker
        self._steps = steps
        self._agents = agents
        self._coalesce_seconds = limits.coalesce_seconds
        self._local: dict[str, LocalRun] = {}
        self._cancel_grace_seconds = limits.cancel_grace_seconds
        self._run_timeout_seconds = limits.run_timeout_seconds
        self._cancellations = heeded_cancellations()
        self.accepting = True

    @property
    def local_runs(self) -> list[LocalRun]:
        return list(self._local.values())

    async def broker_answers(self) -> bool:
        """Whether what the runs are shared through (Redis) answers, for /readyz."""
        return await self.broker.ping()

    async def open(self) -> None:
        await self.broker.start(self.cancel_requested)

    async def start(
        self,
        agent: Agent,
        spec: AgentSpec,
        *,
        user_id: str,
        session_id: str,
        message: str,
        extra: RunExtras = RunExtras(),
    ) -> RunInfo:
        """Admit and start a run; SessionBusy, RateLimited or ShuttingDown when it may not start, or what
        `extra.prepare` raises."""
        start = RunStart(
            run_id=str(uuid4()),
            session_id=session_id,
            user_id=user_id,
            agent_id=spec.id,
            message=message,
            created_at=time.time(),
            metadata=extra.metadata or {},
        )
        info = RunInfo.of_start(start, instance_id=self.broker.instance_id)
        translator = EventTranslator(**_labels(info, spec))
        # Instructions for this answer only go in as a message marked as history: the model reads it, Agno does not
        # store it, and no later run's history holds it.
        run_input: str | list[Message] = (
            [
                Message(role="system", content=extra.instructions, from_history=True),
                Message(role="user", content=message),
            ]
            if extra.instructions
            else message
        )

        media = run_media(extra.attachments, agent, session_id)
        stream = _arun(agent, info, run_input, extra.metadata, media)

        async def prepare() -> None:
            if extra.prepare is not None:
                await extra.prepare()
            # Stored as it starts, so nothing the user sent is lost should this process die mid-run.
            await self._steps.store_start(replace(start, media=media.stored()))

        await self._launch(LocalRun(info=info, translator=translator), stream, prepare)
        return info

    async def start_next(self, session_id: str) -> None:
        """Start the run waiting first in line in the session, if the session is free (its run ended, or it was
        just queued after that run had ended); another instance may take it first, then the next one is tried."""
        while self.accepting:
            queued = await self._steps.first_in_line(session_id)
            if queued is None:
                return
            agent, spec = self._agents.require(queued.agent_id)
            info = RunInfo.of_start(queued, instance_id=self.broker.instance_id)
            local = LocalRun(info=info, translator=EventTranslator(**_labels(info, spec)))
            try:
                media = run_media(queued.attachments, agent, session_id)
                stream = _arun(agent, info, queued.message, queued.metadata, media)
                await self._launch(local, stream, partial(self._take, info, media.stored()))
            except NotInLine:
                continue
            except (SessionBusy, RateLimited, ShuttingDown):
                return  # the session's run, or one of the user's, ends first: its end starts this one
            return

    async def _take(self, info: RunInfo, media: Mapping[str, Any]) -> None:
        if not await self._steps.take_from_line(info, media):
            raise NotInLine()

    async def _start_next_logged(self, session_id: str) -> None:
        try:
            await self.start_next(session_id)
        except Exception:
            log.exception("session %s: could not start the run waiting in line", session_id)

    async def resume(self, agent: Agent, spec: AgentSpec, paused: PausedRun) -> RunInfo:
        """Admit and continue a paused run with its answered requirements, numbering on from the pause.
        SessionBusy, RateLimited or ShuttingDown when it may not go on; RunNotPaused when it was taken first."""
        info = replace(paused.run, instance_id=self.broker.instance_id)
        translator = EventTranslator.continuation(
            _labels(info, spec), first_index=info.first_index, answered=paused.answered_calls
        )

        def stream() -> AsyncIterator[object]:
            return agent.acontinue_run(
                run_id=info.run_id,
                requirements=list(paused.requirements),
                session_id=info.session_id,
                user_id=info.user_id,
                stream=True,
                stream_events=True,
            )

        await self._launch(LocalRun(info=info, translator=translator), stream, lambda: self._claim(info))
        return info

    async def _launch(
        self,
        local: LocalRun,
        stream: Callable[[], AsyncIterator[object]],
        prepare: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """Admit the run, take the steps that must happen while its session is held (`prepare`: claim the paused
        run it continues, take the run it regenerates out of the conversation), then drive it in a task."""
        if not self.accepting:
            raise ShuttingDown("The server is shutting down; start the run again in a moment.")
        info = local.info
        await self.broker.admit(info)
        if prepare is not None:
            try:
                await prepare()
            except BaseException:
                await self.broker.release(info)
                raise
        self._local[info.run_id] = local
        local.task = asyncio.create_task(self._drive(local, stream))
        local.task.add_done_callback(lambda _: self._local.pop(info.run_id, None))
        await self._announce(info, "RUN_STARTED")

    async def _claim(self, info: RunInfo) -> None:
        if not await self._steps.claim_paused(info):
            raise RunNotPaused("The run is no longer paused.", runId=info.run_id)

    async def _drive(self, local: LocalRun, stream: Callable[[], AsyncIterator[object]]) -> None:
        info = local.info
        attributes = {"agno_graphql.run_id": info.run_id, "agno_graphql.session_id": info.session_id}
        with span(self._tracer, "agno_graphql.run", **attributes, **{"agno_graphql.agent_id": info.agent_id}):
            await self._drive_run(local, stream)

    async def _drive_run(self, local: LocalRun, stream: Callable[[], AsyncIterator[object]]) -> None:
        info, translator = local.info, local.translator
        loop = asyncio.get_running_loop()
        timer = loop.call_later(self._run_timeout_seconds, lambda: asyncio.ensure_future(self._time_out(local)))
        lease_ended = asyncio.Event()
        renewer = asyncio.create_task(self._keep_session(info, lease_ended)) if self.broker.leases_lapse else None
        terminal: list[Event] = []
        try:
            async for agno_event in stream():
                terminal += await self._translate_and_publish(local, agno_event)
            terminal += await self._end(local, lambda: translator.fail("The run ended without a result."))
        except asyncio.CancelledError:
            terminal += await self._end(local, lambda: translator.cancel(SERVER_STOPPING))
            # Agno stores a run stopped this way in a task of its own: its end is told once that is done.
            await agno_stores_done(STORE_ALLOWANCE_SECONDS)
            raise
        except Exception as exc:
            log.exception("run %s failed", info.run_id)
            message = f"The run failed: {type(exc).__name__}."
            terminal += await self._end(local, lambda: translator.fail(message))
        finally:
            timer.cancel()
            if local.flush_timer is not None:
                local.flush_timer.cancel()
            await self._finish(info, terminal, renewer, lease_ended)

    async def _finish(
        self, info: RunInfo, terminal: list[Event], renewer: asyncio.Task[None] | None, lease_ended: asyncio.Event
    ) -> None:
        # The session stays leased while the run is being stored, so no other run writes it meanwhile.
        terminal, interrupted = await self._stored_or_failed(info, terminal)
        try:
            replacement = await self._steps.after(info, terminal[0] if terminal else None)
            if replacement is not None:
                terminal = [replacement]
        except Exception:
            log.exception("run %s: a step after the run failed", info.run_id)
        # No renewal may land after the release: stop the renewer and wait until it has stopped.
        lease_ended.set()
        if renewer is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(renewer, timeout=5.0)
        try:
            await self.broker.release(info)
        except Exception:
            log.exception("run %s: could not free its session", info.run_id)
        # Before the terminal event: whoever sees the run end finds the session updated everywhere.
        await self._announce(info, "RUN_PAUSED" if terminal and isinstance(terminal[0], Paused) else "UPDATED")
        try:
            await self.broker.append(info.run_id, terminal)
            await self.broker.seal(info.run_id)
        except Exception:
            log.exception("run %s: could not publish the end of the run", info.run_id)
        if interrupted:
            raise asyncio.CancelledError()
        await self._start_next_logged(info.session_id)

    async def _stored_or_failed(self, info: RunInfo, terminal: list[Event]) -> tuple[list[Event], bool]:
        """The terminal event to publish: the run's own once it is stored, else RunFailed DB_UNAVAILABLE.
        Also whether the task was cancelled meanwhile (the end is published all the same, then it stops)."""
        interrupted = False
        try:
            stored = await self._steps.store(info)
        except asyncio.CancelledError:
            stored, interrupted = False, True
        except Exception:
            log.exception("run %s: could not make sure it is stored", info.run_id)
            stored = False
        if stored or not terminal:
            return terminal, interrupted
        return [Failed.instead_of(terminal[0], NOT_STORED, DB_UNAVAILABLE)], interrupted

    async def _announce(self, info: RunInfo, kind: str) -> None:
        change = SessionChange(kind=kind, user_id=info.user_id, session_id=info.session_id, run_id=info.run_id)
        try:
            await self.broker.publish_change(change)
        except Exception:
            log.exception("could not publish a session change")

    async def _translate_and_publish(self, local: LocalRun, agno_event: object) -> list[Event]:
        """Publish what an Agno event means. Content deltas closer together than the coalescing window are
        held back and sent as one delta at the end of the window: a model streaming faster than a client
        can use it costs one GraphQL event per window, not one per token; a delta after a pause goes at once."""
        async with local.publishing:
            loop = asyncio.get_running_loop()
            now = loop.time()
            hold = now - local.last_delta_at < self._coalesce_seconds
            events = local.translator.translate(agno_event, hold_content=hold)
            if local.translator.holding and local.flush_timer is None:
                local.flush_timer = loop.call_at(
                    local.last_delta_at + self._coalesce_seconds, lambda: asyncio.ensure_future(self._flush(local))
                )
            if any(isinstance(event, ContentDelta) for event in events):
                local.last_delta_at = now
            return await self._publish_until_terminal(local.info, events)

    async def _end(self, local: LocalRun, end: Callable[[], list[Event]]) -> list[Event]:
        async with local.publishing:
            return await self._publish_until_terminal(local.info, end())

    async def _flush(self, local: LocalRun) -> None:
        async with local.publishing:
            local.flush_timer = None
            events = local.translator.flush_held()
            if events:
                local.last_delta_at = asyncio.get_running_loop().time()
                await self._publish_until_terminal(local.info, events)

    async def _publish_until_terminal(self, info: RunInfo, events: list[Event]) -> list[Event]:
        """Publish the events before a terminal one; return the terminal one (held back)."""
        ongoing = [event for event in events if not isinstance(event, TERMINAL)]
        if ongoing:
            await self.broker.append(info.run_id, ongoing)
        return [event for event in events if isinstance(event, TERMINAL)]

    async def _keep_session(self, info: RunInfo, ended: asyncio.Event) -> None:
        """Renew the session's lease until `ended` is set. A flag, not only cancellation: a cancel that lands
        inside a Redis call can be lost (seen with redis-py 8.1), and a renewal after the release would keep
        the user's slot taken."""
        interval = max(0.5, self.broker.limits.lease_seconds / 3)
        while not ended.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ended.wait(), timeout=interval)
            if ended.is_set():
                return
            try:
                await self.broker.renew(info)
            except Exception:
                log.warning("run %s: could not renew the session lease", info.run_id, exc_info=True)

    async def _time_out(self, local: LocalRun) -> None:
        local.translator.timed_out = True
        await self._cancel_local(local, "The run took too long.")

    async def cancel_requested(self, run_id: str, reason: str) -> None:
        """A cancel asked for on any instance (the broker calls this): stop the run if this process drives it."""
        local = self._local.get(run_id)
        if local is not None:
            await self._cancel_local(local, reason)

    async def _cancel_local(self, local: LocalRun, reason: str) -> None:
        """Ask Agno to stop the run; if it does not within the grace period, stop the task."""
        if local.task is None or local.task.done():
            return
        local.translator.cancel_reason = local.translator.cancel_reason or reason
        await Agent.acancel_run(local.info.run_id)
        asyncio.get_running_loop().call_later(self._cancel_grace_seconds, self._stop_unheeded, local)

    def _stop_unheeded(self, local: LocalRun) -> None:
        """The grace period is over: stop the run's task if Agno has not stopped the run. If it has, it is storing
        the run, and stopping the task would cut that write: it gets a longer allowance instead."""
        if local.task is None or local.task.done():
            return
        if self._cancellations is not None and local.info.run_id in self._cancellations.heeded:
            log.warning(
                "run %s: cancelled and still being stored after %.0f s", local.info.run_id, self._cancel_grace_seconds
            )
            asyncio.get_running_loop().call_later(STORE_ALLOWANCE_SECONDS, _cancel_if_running, local.task)
            return
        local.task.cancel()

    async def cancel(self, run_id: str, reason: str = CANCELLED_BY_USER) -> None:
        """Cancel a run wherever it is driven."""
        await self.broker.request_cancel(run_id, reason)

    async def wait_finished(self, run_id: str, timeout: float | None = None) -> None:
        """Until the run's terminal event is published (or the timeout passes)."""
        timeout = self._cancel_grace_seconds + 5 if timeout is None else timeout
        local = self._local.get(run_id)
        if local is not None and local.task is not None:
            await asyncio.wait({local.task}, timeout=timeout)
            return
        with contextlib.suppress(TimeoutError, EventsExpired):
            async with asyncio.timeout(timeout):
                async for _event in self.broker.follow(run_id, -1):
                    pass

    async def stop(self, run_id: str, reason: str) -> None:
        """Cancel the run and wait until it has ended and been stored."""
        await self.cancel(run_id, reason)
        await self.wait_finished(run_id)

    async def shutdown(self, grace_seconds: float) -> None:
        """Take no new runs; let running ones finish for a while, then cancel the rest and wait until
        Agno has stored them, so no run is left unfinished."""
        self.accepting = False
        tasks = {local.task for local in self._local.values() if local.task is not None}
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=grace_seconds)
            for local in list(self._local.values()):
                if local.task in pending:
                    await self._cancel_local(local, SERVER_STOPPING)
            if pending:
                # A run Agno has not stopped by the end of the cancel grace has its task stopped then; one it has
                # stopped is being stored, and gets a while longer.
                timeout = self._cancel_grace_seconds + STORE_ALLOWANCE_SECONDS
                _done, still = await asyncio.wait(pending, timeout=timeout)
                for task in still:
                    task.cancel()
                with contextlib.suppress(Exception):
                    await asyncio.gather(*still, return_exceptions=True)
        await agno_stores_done(STORE_ALLOWANCE_SECONDS)
        await self.broker.close()


class NotInLine(Exception):
    """The run that waited in line was taken by another instance, or cancelled, meanwhile."""


def _arun(
    agent: Agent,
    info: RunInfo,
    run_input: str | list[Message],
    metadata: Mapping[str, Any] | None,
    media: RunMedia | None = None,
) -> Callable[[], AsyncIterator[object]]:
    media = media or RunMedia()

    def stream() -> AsyncIterator[object]:
        return agent.arun(
            run_input,
            images=media.images or None,
            audio=media.audio or None,
            videos=media.videos or None,
            files=media.files or None,
            session_id=info.session_id,
            user_id=info.user_id,
            run_id=info.run_id,
            metadata=dict(metadata) if metadata else None,
            stream=True,
            stream_events=True,
        )

    return stream


def _labels(info: RunInfo, spec: AgentSpec) -> RunLabels:
    return RunLabels(
        run_id=info.run_id,
        session_id=info.session_id,
        agent_id=spec.id,
        model_provider=spec.model_provider,
        model_id=spec.model_id,
    )


async def agno_stores_done(timeout: float) -> None:
    """Wait (at most `timeout`) for the writes Agno makes in tasks of its own: a run whose task was stopped is
    stored that way (AgentOS waits for the same set at shutdown). Only this event loop's: tests run servers
    in several threads of one process."""
    pending = agno_background_tasks(asyncio.get_running_loop())
    if pending:
        await asyncio.wait(pending, timeout=timeout)


def _cancel_if_running(task: asyncio.Task[None]) -> None:
    if not task.done():
        task.cancel()

"""Running an agent in a task of its own and following its events.

The run is driven by a server task, not by the subscriber: when the client
goes away the run is cancelled through Agno (cooperatively), and the task
keeps draining Agno's stream until Agno has stored the run as cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from uuid import uuid4

from agno.agent import Agent

from agno_graphql.agents.events import TERMINAL, Event, EventTranslator
from agno_graphql.agents.registry import AgentSpec

log = logging.getLogger(__name__)

CLIENT_LEFT = "The client disconnected."
SERVER_STOPPING = "The server is shutting down."
SESSION_DELETED = "The session was deleted."


@dataclass
class RunHandle:
    """One run in progress: its events so far and a way to wait for more."""

    run_id: str
    session_id: str
    agent_id: str
    translator: EventTranslator
    events: list[Event] = field(default_factory=list)
    task: asyncio.Task[None] | None = None
    # Steps to take once Agno has stored the run, before followers see the terminal event
    # (Agno rewrites the whole session row at the end of a run).
    after_run: list[Callable[[], Awaitable[object]]] = field(default_factory=list)
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    @property
    def finished(self) -> bool:
        return bool(self.events) and isinstance(self.events[-1], TERMINAL)

    async def publish(self, new_events: list[Event]) -> None:
        if not new_events:
            return
        async with self._changed:
            self.events.extend(new_events)
            self._changed.notify_all()

    async def follow(self, after_index: int = -1) -> AsyncIterator[Event]:
        """Events with index > after_index, live, until the terminal one."""
        position = after_index + 1
        while True:
            async with self._changed:
                await self._changed.wait_for(lambda start=position: len(self.events) > start)  # type: ignore[misc]
                batch = self.events[position:]
            for event in batch:
                yield event
                if isinstance(event, TERMINAL):
                    return
            position += len(batch)


class RunManager:
    """Starts runs and keeps them until they end, so shutdown can wait for them."""

    def __init__(self, cancel_grace_seconds: float = 10.0) -> None:
        self._runs: dict[str, RunHandle] = {}
        self._cancel_grace_seconds = cancel_grace_seconds

    @property
    def active(self) -> list[RunHandle]:
        return list(self._runs.values())

    def active_in_session(self, session_id: str) -> RunHandle | None:
        return next((h for h in self._runs.values() if h.session_id == session_id and not h.finished), None)

    def start(self, agent: Agent, spec: AgentSpec, user_id: str, session_id: str, message: str) -> RunHandle:
        run_id = str(uuid4())
        translator = EventTranslator(
            run_id=run_id,
            session_id=session_id,
            agent_id=spec.id,
            model_provider=spec.model_provider,
            model_id=spec.model_id,
        )
        handle = RunHandle(run_id=run_id, session_id=session_id, agent_id=spec.id, translator=translator)
        handle.task = asyncio.create_task(self._drive(agent, handle, user_id, message))
        self._runs[run_id] = handle
        handle.task.add_done_callback(lambda _: self._runs.pop(run_id, None))
        return handle

    async def _drive(self, agent: Agent, handle: RunHandle, user_id: str, message: str) -> None:
        translator = handle.translator
        stream = agent.arun(
            message,
            session_id=handle.session_id,
            user_id=user_id,
            run_id=handle.run_id,
            stream=True,
            stream_events=True,
        )
        # The terminal event is held back until Agno's stream is over (the run is stored) and the
        # after-run steps are done, so a follower that reads the session next sees the final state.
        terminal: list[Event] = []
        try:
            async for agno_event in stream:
                terminal += await self._publish_until_terminal(handle, translator.translate(agno_event))
            terminal += await self._publish_until_terminal(handle, translator.fail("The run ended without a result."))
        except asyncio.CancelledError:
            terminal += await self._publish_until_terminal(handle, translator.cancel(SERVER_STOPPING))
            await handle.publish(terminal)
            raise
        except Exception as exc:
            log.exception("run %s failed", handle.run_id)
            terminal += await self._publish_until_terminal(
                handle, translator.fail(f"The run failed: {type(exc).__name__}.")
            )
        for step in handle.after_run:
            try:
                await step()
            except Exception:
                log.exception("run %s: a step after the run failed", handle.run_id)
        await handle.publish(terminal)

    @staticmethod
    async def _publish_until_terminal(handle: RunHandle, events: list[Event]) -> list[Event]:
        """Publish the events before a terminal one; return the terminal one (held back)."""
        ongoing = [event for event in events if not isinstance(event, TERMINAL)]
        await handle.publish(ongoing)
        return [event for event in events if isinstance(event, TERMINAL)]

    async def cancel(self, handle: RunHandle, reason: str = CLIENT_LEFT) -> None:
        """Ask Agno to stop the run; if it does not within the grace period, stop the task."""
        if handle.finished or handle.task is None:
            return
        handle.translator.cancel_reason = handle.translator.cancel_reason or reason
        await Agent.acancel_run(handle.run_id)
        task = handle.task
        asyncio.get_running_loop().call_later(self._cancel_grace_seconds, _cancel_if_running, task)

    async def stop(self, handle: RunHandle, reason: str) -> None:
        """Cancel the run and wait until it has ended and been stored."""
        await self.cancel(handle, reason)
        if handle.task is not None:
            await asyncio.wait({handle.task}, timeout=self._cancel_grace_seconds + 5)

    async def shutdown(self, grace_seconds: float) -> None:
        """Let runs finish for a while, then cancel the rest and wait until they are stored."""
        tasks = [h.task for h in self._runs.values() if h.task is not None]
        if not tasks:
            return
        _done, pending = await asyncio.wait(tasks, timeout=grace_seconds)
        for handle in list(self._runs.values()):
            if handle.task in pending:
                await Agent.acancel_run(handle.run_id)
        if pending:
            _done, still = await asyncio.wait(pending, timeout=max(1.0, grace_seconds))
            for task in still:
                task.cancel()
            with contextlib.suppress(Exception):
                await asyncio.gather(*still, return_exceptions=True)


def _cancel_if_running(task: asyncio.Task[None]) -> None:
    if not task.done():
        task.cancel()

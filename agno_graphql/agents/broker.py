"""What server instances share about runs: the event log, the per-session lock, cancellation, live changes.

`RunBroker` is the one small interface; `InProcessBroker` serves a single process, and
`agents.redis_broker.RedisBroker` serves several instances behind a load balancer. Both behave the
same to a client: a run can be followed, resumed after an index, and cancelled by its owner, one run at
a time per session, a bounded number per user.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol
from uuid import uuid4

from agno_graphql.errors import EventsExpired, RateLimited, SessionBusy
from agno_graphql.records import TERMINAL, Event, Paused, RunRecord, RunStart

CancelHandler = Callable[[str, str], Awaitable[None]]

# What the broker knows of a run's driver: it holds the session (GOING); it released it, its terminal event told
# or on the way (ENDING); or nobody drives it, nor ended it (LOST: its server went away, or it is not known here).
GOING, ENDING, LOST = "going", "ending", "lost"


@dataclass(frozen=True)
class RunInfo:
    """A run the broker knows of: going, or ended within the retention period."""

    run_id: str
    session_id: str
    agent_id: str
    user_id: str
    input: str
    created_at: float
    finished: bool = False
    # The index of the run's first event here: 0, or where a paused run's numbering stands for its continuation.
    first_index: int = 0
    # The instance that drives it (when it dies, the runs it took into a session's line are lost with it).
    instance_id: str = ""

    @classmethod
    def of_start(cls, start: RunStart, *, instance_id: str) -> RunInfo:
        """The run a start (new, or waiting in line) becomes once this instance drives it."""
        return cls(
            run_id=start.run_id,
            session_id=start.session_id,
            agent_id=start.agent_id,
            user_id=start.user_id,
            input=start.message,
            created_at=start.created_at,
            instance_id=instance_id,
        )

    @classmethod
    def of_record(cls, run: RunRecord, user_id: str, *, first_index: int = 0) -> RunInfo:
        """A stored run as the broker knows it (a lost one to settle, a paused one to continue at `first_index`)."""
        return cls(
            run_id=run.id,
            session_id=run.session_id,
            agent_id=run.agent_id,
            user_id=user_id,
            input=run.input or "",
            created_at=float(run.created_at),
            first_index=first_index,
        )


@dataclass(frozen=True)
class SessionChange:
    """Something happened to one of a user's sessions (for the user's other tabs)."""

    kind: str  # CREATED, RENAMED, RUN_STARTED, UPDATED, DELETED
    user_id: str
    session_id: str
    run_id: str | None = None
    at: float = field(default_factory=time.time)


@dataclass(frozen=True)
class BrokerLimits:
    max_runs_per_user: int = 5
    max_events_per_run: int = 10_000
    retention_seconds: float = 600.0
    # How long a session lock outlives its last renewal; a crashed instance frees its sessions this fast.
    lease_seconds: float = 30.0
    # How long a running run's log and record are kept without news (longer than any run may last).
    running_ttl_seconds: float = 900.0


class RunBroker(Protocol):
    limits: BrokerLimits
    # Whether a session's lock lapses unless the run renews it (shared brokers: a crashed instance frees its
    # sessions that way); a process's own locks go with the process.
    leases_lapse: bool
    # This server instance, among those sharing the broker (the runs it takes into a session's line are its own).
    instance_id: str

    async def instance_alive(self, instance_id: str) -> bool:
        """Whether that instance still serves (it renews a lease of its own while it does)."""

    async def start(self, on_cancel: CancelHandler) -> None:
        """Begin serving; `on_cancel(run_id, reason)` is called when any instance asks to cancel a run."""

    async def close(self) -> None: ...

    async def ping(self) -> bool:
        """Whether what the broker shares runs through answers."""

    async def admit(self, run: RunInfo) -> None:
        """Take the session's lock and a slot of the user's, and open the run's log.
        SessionBusy or RateLimited when it may not start."""

    async def renew(self, run: RunInfo) -> None:
        """Keep the session's lock while the run goes."""

    async def release(self, run: RunInfo) -> None:
        """Free the session and the user's slot; the run counts as finished."""

    async def append(self, run_id: str, events: Sequence[Event]) -> None: ...

    async def seal(self, run_id: str) -> None:
        """The log is complete: keep it for the retention period, then drop it."""

    def follow(self, run_id: str, after_index: int) -> AsyncIterator[Event]:
        """Events with index > after_index, then live ones until the terminal event.
        EventsExpired (before the first event) when they are no longer held."""

    async def run_info(self, run_id: str) -> RunInfo | None: ...

    async def run_state(self, run_id: str) -> str:
        """GOING, ENDING or LOST."""

    async def held_events(self, run_id: str) -> list[Event]:
        """The run's events as far as they are held (none once they expired, or where nobody kept them)."""

    async def active_runs(self, session_ids: Sequence[str]) -> dict[str, str]:
        """session id -> id of the run going in it, for those that have one."""

    async def request_cancel(self, run_id: str, reason: str) -> None: ...

    async def set_pending_name(self, session_id: str, run_id: str, name: str) -> None:
        """A rename made while `run_id` goes; the run re-applies it after Agno stores the session."""

    async def take_pending_name(self, session_id: str, run_id: str) -> str | None: ...

    async def clear_pending_name(self, session_id: str) -> None: ...

    async def publish_change(self, change: SessionChange) -> None: ...

    def changes(self, user_id: str) -> AsyncIterator[SessionChange]:
        """The user's session changes from now on, until the caller stops."""


class EventLog:
    """A run's events in memory: bounded (oldest dropped first), followed by any number of readers.

    A waiting reader holds a future of its own that the next append resolves: one loop, so no lock is needed,
    and an event costs no lock round trips (an asyncio.Condition took about a tenth of a streaming server's CPU)."""

    def __init__(self, max_events: int, first_index: int = 0) -> None:
        self.max_events = max_events
        self.events: list[Event] = []
        self.first_index = first_index
        self.expires_at: float | None = None
        self._waiting: list[asyncio.Future[None]] = []
        # A paused run was continued and its next part has not told anything yet: its Paused is no end.
        self.continuing = False

    @property
    def next_index(self) -> int:
        return self.first_index + len(self.events)

    @property
    def finished(self) -> bool:
        return bool(self.events) and self.ends_at(self.events[-1])

    def ends_at(self, event: Event) -> bool:
        """Whether a follower that has read `event` is at the end: a terminal event, unless a continuation
        goes on after it (a Paused followed by more, or with a continuation opening)."""
        if not isinstance(event, TERMINAL):
            return False
        if isinstance(event, Paused):
            return not self.continuing and self.next_index <= event.index + 1
        return True

    def reopen(self) -> None:
        """A paused run goes on: keep the log, and let followers wait past its Paused."""
        self.expires_at = None
        self.continuing = True

    async def append(self, events: Sequence[Event]) -> None:
        if not events:
            return
        self.continuing = False
        self.events.extend(events)
        overflow = len(self.events) - self.max_events
        # Trim in chunks, so a long run does not shift the list on every event.
        if overflow > max(1, self.max_events // 8):
            del self.events[:overflow]
            self.first_index += overflow
        waiting, self._waiting = self._waiting, []
        for reader in waiting:
            if not reader.done():  # a reader that left has cancelled its own
                reader.set_result(None)

    def check_available(self, after_index: int) -> None:
        if after_index + 1 < self.first_index:
            raise EventsExpired(
                f"Events up to index {self.first_index - 1} are no longer held; resume with afterIndex "
                f"{self.first_index - 1} or later, or read the run once it has ended.",
                firstAvailableIndex=self.first_index,
            )

    async def follow(self, after_index: int) -> AsyncIterator[Event]:
        self.check_available(after_index)
        position = after_index + 1
        while True:
            while self.next_index <= position and not self.finished:
                appended = asyncio.get_running_loop().create_future()
                self._waiting.append(appended)
                await appended
            if position < self.first_index:
                # Trimmed while this reader lagged: it cannot be told the run without a gap.
                self.check_available(position - 1)
            batch = self.events[position - self.first_index :]
            if not batch:
                return  # already past the terminal event
            for event in batch:
                yield event
                if self.ends_at(event):
                    return
            position += len(batch)


class LocalLogs:
    """Event logs and records of runs held in this process, dropped after the retention period."""

    def __init__(self, limits: BrokerLimits) -> None:
        self.limits = limits
        self.logs: dict[str, EventLog] = {}
        self.infos: dict[str, RunInfo] = {}

    def open(self, run: RunInfo) -> None:
        """A new run's log, or a paused run's log reopened for its continuation (when still held)."""
        self.purge()
        held = self.logs.get(run.run_id)
        if held is not None and run.first_index > 0 and held.next_index == run.first_index:
            held.reopen()
        else:
            self.logs[run.run_id] = EventLog(self.limits.max_events_per_run, run.first_index)
        self.infos[run.run_id] = run

    def seal(self, run_id: str) -> None:
        log = self.logs.get(run_id)
        if log is not None:
            log.expires_at = time.monotonic() + self.limits.retention_seconds
        info = self.infos.get(run_id)
        if info is not None:
            self.infos[run_id] = replace(info, finished=True)

    def purge(self) -> None:
        now = time.monotonic()
        for run_id in [r for r, log in self.logs.items() if log.expires_at is not None and log.expires_at < now]:
            self.logs.pop(run_id, None)
            self.infos.pop(run_id, None)

    def log(self, run_id: str) -> EventLog | None:
        self.purge()
        return self.logs.get(run_id)


class ChangeFanout:
    """Session changes delivered to this process's subscribers of each user."""

    def __init__(self) -> None:
        self._queues: dict[str, set[asyncio.Queue[SessionChange]]] = {}

    def deliver(self, change: SessionChange) -> None:
        for queue in self._queues.get(change.user_id, ()):
            queue.put_nowait(change)

    async def listen(self, user_id: str) -> AsyncIterator[SessionChange]:
        queue: asyncio.Queue[SessionChange] = asyncio.Queue()
        self._queues.setdefault(user_id, set()).add(queue)
        try:
            while True:
                yield await queue.get()
        finally:
            listeners = self._queues.get(user_id)
            if listeners is not None:
                listeners.discard(queue)
                if not listeners:
                    del self._queues[user_id]


class InProcessBroker:
    """The broker of a single server process."""

    leases_lapse = False

    def __init__(self, limits: BrokerLimits | None = None) -> None:
        self.limits = limits or BrokerLimits()
        self.instance_id = str(uuid4())
        self._local = LocalLogs(self.limits)
        self._session_runs: dict[str, str] = {}
        self._user_runs: dict[str, set[str]] = {}
        self._pending_names: dict[str, tuple[str, str]] = {}
        self._fanout = ChangeFanout()
        self._on_cancel: CancelHandler | None = None

    async def start(self, on_cancel: CancelHandler) -> None:
        self._on_cancel = on_cancel

    async def close(self) -> None:
        return None

    async def ping(self) -> bool:
        return True

    async def instance_alive(self, instance_id: str) -> bool:
        return instance_id == self.instance_id

    async def admit(self, run: RunInfo) -> None:
        if run.session_id in self._session_runs:
            raise SessionBusy("A run is already going in this session; wait for it to end or cancel it.")
        user_runs = self._user_runs.setdefault(run.user_id, set())
        if len(user_runs) >= self.limits.max_runs_per_user:
            raise RateLimited(
                f"You have {len(user_runs)} runs going, the most allowed at once; wait for one to end.",
                limit=self.limits.max_runs_per_user,
            )
        self._session_runs[run.session_id] = run.run_id
        user_runs.add(run.run_id)
        self._local.open(run)

    async def renew(self, run: RunInfo) -> None:
        return None

    async def release(self, run: RunInfo) -> None:
        if self._session_runs.get(run.session_id) == run.run_id:
            del self._session_runs[run.session_id]
        user_runs = self._user_runs.get(run.user_id)
        if user_runs is not None:
            user_runs.discard(run.run_id)
            if not user_runs:
                del self._user_runs[run.user_id]
        self._local.seal(run.run_id)

    async def append(self, run_id: str, events: Sequence[Event]) -> None:
        log = self._local.logs.get(run_id)
        if log is not None:
            await log.append(events)

    async def seal(self, run_id: str) -> None:
        self._local.seal(run_id)

    def follow(self, run_id: str, after_index: int) -> AsyncIterator[Event]:
        log = self._local.log(run_id)
        if log is None:
            raise EventsExpired("The run's events are no longer held.")
        log.check_available(after_index)
        return log.follow(after_index)

    async def run_info(self, run_id: str) -> RunInfo | None:
        self._local.purge()
        return self._local.infos.get(run_id)

    async def run_state(self, run_id: str) -> str:
        info = await self.run_info(run_id)
        if info is None:
            return LOST
        return ENDING if info.finished else GOING

    async def held_events(self, run_id: str) -> list[Event]:
        log = self._local.log(run_id)
        return list(log.events) if log is not None else []

    async def active_runs(self, session_ids: Sequence[str]) -> dict[str, str]:
        return {sid: self._session_runs[sid] for sid in session_ids if sid in self._session_runs}

    async def request_cancel(self, run_id: str, reason: str) -> None:
        if self._on_cancel is not None:
            await self._on_cancel(run_id, reason)

    async def set_pending_name(self, session_id: str, run_id: str, name: str) -> None:
        self._pending_names[session_id] = (run_id, name)

    async def take_pending_name(self, session_id: str, run_id: str) -> str | None:
        pending = self._pending_names.get(session_id)
        if pending is None or pending[0] != run_id:
            return None
        del self._pending_names[session_id]
        return pending[1]

    async def clear_pending_name(self, session_id: str) -> None:
        self._pending_names.pop(session_id, None)

    async def publish_change(self, change: SessionChange) -> None:
        self._fanout.deliver(change)

    def changes(self, user_id: str) -> AsyncIterator[SessionChange]:
        return self._fanout.listen(user_id)

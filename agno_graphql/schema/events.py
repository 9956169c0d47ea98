"""The events of a run, as `runAgent` streams them. `index` counts 0, 1, 2, ... per run."""

from __future__ import annotations

from datetime import datetime

import strawberry

from agno_graphql.context import Info
from agno_graphql.schema.enums import SessionEventKind
from agno_graphql.schema.types import ModelInfo, RunMetrics, RunRequirement, Session, ToolCall


@strawberry.interface(
    description="Something that happened in a run. The first event is RunStarted; the last is "
    "RunCompleted, RunFailed or RunCancelled, or RunPaused while the run waits for answers (continueRun "
    "then streams the rest: RunContinued first, its indexes going on from the pause)."
)
class RunEvent:
    run_id: strawberry.ID
    session_id: strawberry.ID
    index: int
    created_at: datetime


@strawberry.type
class RunStarted(RunEvent):
    agent_id: strawberry.ID
    model: ModelInfo


@strawberry.type
class RunContentDelta(RunEvent):
    delta: str


@strawberry.type
class ReasoningDelta(RunEvent):
    delta: str


@strawberry.type
class ToolCallStarted(RunEvent):
    tool_call: ToolCall


@strawberry.type
class ToolCallCompleted(RunEvent):
    tool_call: ToolCall
    result: str | None
    failed: bool


@strawberry.type
class RunCompleted(RunEvent):
    content: str | None
    metrics: RunMetrics | None


@strawberry.type
class RunFailed(RunEvent):
    message: str
    code: str
    retry_after_seconds: int | None = strawberry.field(
        default=None, description="With MODEL_RATE_LIMITED: how long the model provider asked to wait, when it said."
    )


@strawberry.type
class RunCancelled(RunEvent):
    reason: str | None
    content: str | None


@strawberry.type(
    description="The run waits for a person (or the client): the last event of its stream until continueRun."
)
class RunPaused(RunEvent):
    requirements: list[RunRequirement] = strawberry.field(description="What must be answered before the run goes on.")


@strawberry.type(description="A paused run goes on: the first event of continueRun.")
class RunContinued(RunEvent):
    pass


@strawberry.type(
    description="The run waits in line behind the session's runs before it (ifBusy: ENQUEUE), stored PENDING; it "
    "starts when they have ended. Sent once, with index -1: not one of the run's numbered events (RunStarted is "
    "still index 0), and runEvents never tells it."
)
class RunQueued(RunEvent):
    position: int = strawberry.field(description="Its place in line: 1 starts next.")


EVENT_TYPES = [
    RunStarted,
    RunContentDelta,
    ReasoningDelta,
    ToolCallStarted,
    ToolCallCompleted,
    RunCompleted,
    RunFailed,
    RunCancelled,
    RunPaused,
    RunContinued,
    RunQueued,
]


@strawberry.type(description="One of the viewer's sessions changed (for keeping a list of sessions in sync).")
class SessionEvent:
    kind: SessionEventKind
    session_id: strawberry.ID
    run_id: strawberry.ID | None
    at: datetime

    @strawberry.field(description="The session as it is now; null once deleted.")
    async def session(self, info: Info) -> Session | None:
        record = await info.context.services.sessions.get(info.context.user_id, str(self.session_id))
        return Session.from_record(record) if record is not None else None

"""Runs: the runAgent and runEvents subscriptions (domain run events in, RunEvent types out), and `run`."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any

import strawberry

from agno_graphql import records as domain
from agno_graphql.context import Info
from agno_graphql.resolvers.token_lifetime import while_token_holds
from agno_graphql.schema import events
from agno_graphql.schema.enums import DisconnectPolicy
from agno_graphql.schema.inputs import ContinueRunInput, EditMessageInput, RegenerateRunInput, RunAgentInput
from agno_graphql.schema.types import ModelInfo, Run, RunMetrics, RunRequirement, ToolCall, timestamp


def to_run_event(event: domain.Event) -> events.RunEvent:
    base: dict[str, Any] = {
        "run_id": strawberry.ID(event.run_id),
        "session_id": strawberry.ID(event.session_id),
        "index": event.index,
        "created_at": timestamp(event.created_at),
    }
    match event:
        case domain.Started():
            model = ModelInfo(provider=event.model_provider, id=event.model_id)
            return events.RunStarted(**base, agent_id=strawberry.ID(event.agent_id), model=model)
        case domain.ContentDelta():
            return events.RunContentDelta(**base, delta=event.delta)
        case domain.ReasoningDelta():
            return events.ReasoningDelta(**base, delta=event.delta)
        case domain.ToolStarted():
            return events.ToolCallStarted(**base, tool_call=ToolCall.from_record(event.tool_call))
        case domain.ToolCompleted():
            call = ToolCall.from_record(event.tool_call)
            return events.ToolCallCompleted(**base, tool_call=call, result=event.result, failed=event.failed)
        case domain.Completed():
            return events.RunCompleted(**base, content=event.content, metrics=RunMetrics.from_data(event.metrics))
        case domain.Failed():
            return events.RunFailed(
                **base, message=event.message, code=event.code, retry_after_seconds=event.retry_after_seconds
            )
        case domain.Cancelled():
            return events.RunCancelled(**base, reason=event.reason, content=event.content)
        case domain.Paused():
            return events.RunPaused(**base, requirements=[RunRequirement.from_record(r) for r in event.requirements])
        case domain.Continued():
            return events.RunContinued(**base)
        case domain.Queued():
            return events.RunQueued(**base, position=event.position)
    raise TypeError(f"unknown run event {type(event).__name__}")


async def _told(
    info: Info, opening: Callable[[], Awaitable[AsyncIterator[domain.Event]]]
) -> AsyncGenerator[events.RunEvent, None]:
    """The events of the run `opening` starts or joins (called on the first read), as GraphQL types, while the
    viewer's token holds."""
    stream = await opening()
    async for event in while_token_holds(info.context, stream):
        yield to_run_event(event)


def _started(
    info: Info,
    start: Callable[..., Awaitable[AsyncIterator[domain.Event]]],
    *args: Any,
    on_disconnect: DisconnectPolicy,
    **kwargs: Any,
) -> AsyncGenerator[events.RunEvent, None]:
    """The events of the run `start` begins for the viewer (`start(user_id, *args, cancel_on_disconnect=...,
    **kwargs)`, a service call), as GraphQL types."""
    cancel = on_disconnect == DisconnectPolicy.CANCEL
    return _told(info, lambda: start(info.context.user_id, *args, cancel_on_disconnect=cancel, **kwargs))


def run_agent(info: Info, input: RunAgentInput) -> AsyncGenerator[events.RunEvent, None]:
    """Stream one run: RunStarted first, deltas and tool events, one terminal event last."""
    return _started(
        info,
        info.context.services.runs.start,
        str(input.agent_id),
        str(input.session_id) if input.session_id is not None else None,
        input.message,
        on_disconnect=input.on_disconnect,
        if_busy=input.if_busy.value,
        attachments=[str(i) for i in input.attachments or ()],
    )


def continue_run(info: Info, input: ContinueRunInput) -> AsyncGenerator[events.RunEvent, None]:
    """Answer a paused run and stream the rest: RunContinued first, one terminal event (or RunPaused) last."""
    answers = [answer.as_answer() for answer in input.answers]
    runs = info.context.services.runs
    return _started(info, runs.continue_run, str(input.run_id), answers, on_disconnect=input.on_disconnect)


def regenerate_run(info: Info, input: RegenerateRunInput) -> AsyncGenerator[events.RunEvent, None]:
    """A new answer to the latest run's user message: RunStarted first, one terminal event last."""
    edits = info.context.services.edits
    return _started(info, edits.regenerate, str(input.run_id), input.instructions, on_disconnect=input.on_disconnect)


def edit_message(info: Info, input: EditMessageInput) -> AsyncGenerator[events.RunEvent, None]:
    """The edited message answered by a new run: RunStarted first, one terminal event last."""
    return _started(
        info,
        info.context.services.edits.edit_message,
        str(input.message_id),
        input.message,
        attachments=[str(i) for i in input.attachments or ()],
        on_disconnect=input.on_disconnect,
    )


def run_events(
    info: Info, run_id: strawberry.ID, after_index: int | None = None
) -> AsyncGenerator[events.RunEvent, None]:
    """Follow a run, from the start or after an index, to its terminal event."""
    return _told(info, lambda: info.context.services.runs.events(info.context.user_id, str(run_id), after_index))


async def resolve_run(info: Info, id: strawberry.ID) -> Run | None:
    record = await info.context.services.runs.get(info.context.user_id, str(id))
    return Run.from_record(record) if record is not None else None

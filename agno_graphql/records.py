"""The records of the domain, declared once: what the database layer reads, what the run path makes, and what the
schema maps to its GraphQL types (each in one place: `schema/types.py`, `schema/events.py`).

Plain frozen dataclasses, with nothing of SQL, Agno or GraphQL in them, so every layer may import them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

# --- what is stored ---


@dataclass(frozen=True, slots=True)
class ToolCallRecord:
    id: str
    name: str
    arguments: Any


@dataclass(frozen=True, slots=True)
class RunMetricsData:
    input_tokens: int | None = None
    output_tokens: int | None = None
    total_tokens: int | None = None
    duration_ms: float | None = None
    time_to_first_token_ms: float | None = None


# Where an attachment stood among those its message sent (Agno's media `metadata`).
POSITION_KEY = "position"


@dataclass(frozen=True)
class AttachmentRecord:
    """A file a user uploaded (or a tool or model made), as stored: what it is, whose, where its bytes are."""

    id: str
    user_id: str
    session_id: str | None  # the session it was first sent in; None until then
    name: str
    mime_type: str
    kind: str  # IMAGE, AUDIO, VIDEO, DOCUMENT
    byte_size: int
    created_at: float
    storage_key: str
    content_hash: str
    width: int | None = None
    height: int | None = None
    first_line: str | None = None


@dataclass(frozen=True)
class MessageRecord:
    id: str
    run_id: str | None
    run_index: int
    position: int
    role: str
    content: str | None
    tool_calls: list[ToolCallRecord]
    tool_call_id: str | None
    tool_name: str | None
    created_at: int
    tool_call_error: bool = False
    attachments: tuple[AttachmentRecord, ...] = ()


# In a queued run's metadata: the ids of the attachments its message sends (they are read back as it starts).
ATTACHMENTS_KEY = "agno_graphql_attachments"


@dataclass(frozen=True)
class RunStart:
    """A run as it is stored before it ends: as it starts, or as it waits in line (what it needs to start)."""

    run_id: str
    session_id: str
    user_id: str
    agent_id: str
    message: str
    created_at: float
    metadata: Mapping[str, Any] = field(default_factory=dict)
    attachments: tuple[AttachmentRecord, ...] = ()
    # The attachments as the stored user message holds them (Agno's media lists of references), until Agno writes
    # the run.
    media: Mapping[str, Any] = field(default_factory=dict)


# --- what a paused run waits for ---

CONFIRMATION = "CONFIRMATION"
USER_INPUT = "USER_INPUT"
USER_FEEDBACK = "USER_FEEDBACK"
EXTERNAL_EXECUTION = "EXTERNAL_EXECUTION"


@dataclass(frozen=True, slots=True)
class UserInputFieldRecord:
    name: str
    type: str  # Agno's name of the Python type: str, int, float, bool, list, dict
    description: str | None
    value: Any  # what the model filled in; None where the person is to


@dataclass(frozen=True, slots=True)
class FeedbackOptionRecord:
    label: str
    description: str | None


@dataclass(frozen=True, slots=True)
class FeedbackQuestionRecord:
    header: str | None
    question: str
    options: tuple[FeedbackOptionRecord, ...]
    multi_select: bool


@dataclass(frozen=True, slots=True)
class RequirementRecord:
    """One thing a paused run waits for: a person's confirmation, input or choice, or a tool the client runs."""

    id: str
    kind: str  # CONFIRMATION, USER_INPUT, USER_FEEDBACK, EXTERNAL_EXECUTION
    tool_call: ToolCallRecord
    input_fields: tuple[UserInputFieldRecord, ...]
    questions: tuple[FeedbackQuestionRecord, ...]
    created_at: float


@dataclass(frozen=True, slots=True)
class RequirementAnswer:
    """A client's answer to one requirement (which fields belong to which kind is checked by the run service)."""

    requirement_id: str
    confirmed: bool | None = None
    note: str | None = None
    values: Any = None
    selections: tuple[tuple[str, ...], ...] | None = None
    result: str | None = None


@dataclass(frozen=True)
class RunRecord:
    id: str
    session_id: str
    agent_id: str
    run_index: int
    status: str
    input: str | None
    content: str | None
    created_at: int
    metrics: RunMetricsData | None = None
    # How a failed run failed, as its RunFailed said (kept in the run's metadata): (code, message).
    failure: tuple[str, str] | None = None
    # While PAUSED: what it waits for, and the index its next event gets (kept in the run's metadata).
    requirements: tuple[RequirementRecord, ...] = ()
    next_index: int | None = None
    # Taken out of the conversation by a regeneration (or an edit); kept, with the status it had.
    replaced: bool = False
    # The answers to one user message share this: the id of the first run that answered it.
    answers_to: str = ""


@dataclass(frozen=True)
class SessionRecord:
    id: str
    agent_id: str
    user_id: str
    name: str | None
    created_at: int
    updated_at: int
    # The first message, shortened, when the query read it (`title_known`); else it is loaded on demand.
    title: str | None = None
    title_known: bool = False


# Read from the plain values Agno stores and streams (dicts, JSON strings, or objects with those attributes).


def parse_arguments(raw: Any) -> Any:
    """Tool arguments as JSON: providers send a JSON string, sometimes a broken one."""
    if isinstance(raw, str):
        try:
            return json.loads(raw) if raw.strip() else {}
        except ValueError:
            return raw
    return raw


def metrics_data(metrics: Any) -> RunMetricsData | None:
    """Agno's run metrics (a dict or an object, seconds) as ours (milliseconds)."""
    if metrics is None:
        return None
    get = metrics.get if isinstance(metrics, dict) else lambda name: getattr(metrics, name, None)

    def millis(value: Any) -> float | None:
        return round(float(value) * 1000, 3) if isinstance(value, int | float) else None

    def count(value: Any) -> int | None:
        return int(value) if isinstance(value, int | float) else None

    return RunMetricsData(
        input_tokens=count(get("input_tokens")),
        output_tokens=count(get("output_tokens")),
        total_tokens=count(get("total_tokens")),
        duration_ms=millis(get("duration")),
        time_to_first_token_ms=millis(get("time_to_first_token")),
    )


def requirement_of(data: Any) -> RequirementRecord | None:
    """A requirement as Agno stores it (`RunRequirement.to_dict()`), as ours; None when it is not one."""
    if not isinstance(data, dict) or not data.get("id"):
        return None
    raw_tool = data.get("tool_execution")
    tool: dict[str, Any] = raw_tool if isinstance(raw_tool, dict) else {}
    feedback = data.get("user_feedback_schema") or tool.get("user_feedback_schema") or []
    inputs = data.get("user_input_schema") or tool.get("user_input_schema") or []
    if feedback:
        kind = USER_FEEDBACK
    elif tool.get("external_execution_required"):
        kind = EXTERNAL_EXECUTION
    elif tool.get("requires_user_input") or inputs:
        kind = USER_INPUT
    else:
        kind = CONFIRMATION
    return RequirementRecord(
        id=str(data["id"]),
        kind=kind,
        tool_call=ToolCallRecord(
            id=str(tool.get("tool_call_id") or ""),
            name=str(tool.get("tool_name") or ""),
            arguments=parse_arguments(tool.get("tool_args")),
        ),
        input_fields=tuple(
            UserInputFieldRecord(
                name=str(field.get("name") or ""),
                type=str(field.get("field_type") or "str"),
                description=field.get("description"),
                value=field.get("value"),
            )
            for field in inputs
            if isinstance(field, dict)
        )
        if kind == USER_INPUT
        else (),
        questions=tuple(
            FeedbackQuestionRecord(
                header=question.get("header"),
                question=str(question.get("question") or ""),
                options=tuple(
                    FeedbackOptionRecord(label=str(option.get("label") or ""), description=option.get("description"))
                    for option in question.get("options") or []
                    if isinstance(option, dict)
                ),
                multi_select=bool(question.get("multi_select")),
            )
            for question in feedback
            if isinstance(question, dict)
        ),
        created_at=_timestamp(data.get("created_at")),
    )


def _timestamp(value: Any) -> float:
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value).timestamp()
        except ValueError:
            return 0.0
    return 0.0


# --- what a list is asked for ---


@dataclass(frozen=True, slots=True)
class PageArgs:
    """The Relay arguments of one list field, as the client sent them (validated by `db.pagination`)."""

    first: int | None = None
    after: str | None = None
    last: int | None = None
    before: str | None = None


@dataclass(frozen=True, slots=True)
class SessionOrdering:
    field: str = "updated_at"  # or "created_at"
    descending: bool = True


# --- what a run tells ---


# Slots: a run's events stay in memory for resumes (up to RUN_EVENTS_MAX, kept a while after the end), and a short
# delta without a __dict__ takes about 190 bytes instead of 230.
@dataclass(frozen=True, slots=True)
class Event:
    run_id: str
    session_id: str
    index: int
    created_at: float


@dataclass(frozen=True, slots=True)
class Started(Event):
    agent_id: str
    model_provider: str
    model_id: str


@dataclass(frozen=True, slots=True)
class ContentDelta(Event):
    delta: str


@dataclass(frozen=True, slots=True)
class ReasoningDelta(Event):
    delta: str


@dataclass(frozen=True, slots=True)
class ToolStarted(Event):
    tool_call: ToolCallRecord


@dataclass(frozen=True, slots=True)
class ToolCompleted(Event):
    tool_call: ToolCallRecord
    result: str | None
    failed: bool


@dataclass(frozen=True, slots=True)
class Completed(Event):
    content: str | None
    metrics: RunMetricsData | None


@dataclass(frozen=True, slots=True)
class Failed(Event):
    message: str
    code: str
    retry_after_seconds: int | None = None

    @classmethod
    def instead_of(cls, end: Event, message: str, code: str) -> Failed:
        """The failure a run ends with in place of `end` (its terminal event), found only once the run was over."""
        return cls(
            run_id=end.run_id,
            session_id=end.session_id,
            index=end.index,
            created_at=time.time(),
            message=message,
            code=code,
        )


@dataclass(frozen=True, slots=True)
class Cancelled(Event):
    reason: str | None
    content: str | None


@dataclass(frozen=True, slots=True)
class Paused(Event):
    """The run waits for a person (or the client): the last event of its stream until it is continued."""

    requirements: tuple[RequirementRecord, ...]


@dataclass(frozen=True, slots=True)
class Continued(Event):
    """A paused run goes on: the first event of its continuation."""


@dataclass(frozen=True, slots=True)
class Queued(Event):
    """The run waits in line behind the runs of its session before it (`ifBusy: ENQUEUE`); `position` 1 is next.
    Not one of the run's numbered events (`index` -1): no log holds it, and `runEvents` never tells it."""

    position: int


# A stream ends at one of these. A run's log may go on past a Paused once the run is continued.
TERMINAL = (Completed, Failed, Cancelled, Paused)
EVENT_KINDS: dict[str, type[Event]] = {
    kind.__name__: kind
    for kind in (
        Started,
        ContentDelta,
        ReasoningDelta,
        ToolStarted,
        ToolCompleted,
        Completed,
        Failed,
        Cancelled,
        Paused,
        Continued,
        Queued,
    )
}

"""Run events as the server tells them, and the translation from Agno's event stream.

Agno's stream has more kinds of events than a chat client needs, a RunCompleted
after RunCancelled, and no guarantee of a start event before an early error.
`EventTranslator` turns it into: one RunStarted, then deltas and tool events,
then exactly one terminal event, with indexes 0, 1, 2, ... and no gap.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, TypedDict

from agno.run.agent import RunEvent as AgnoEvent

from agno_graphql.records import (
    EVENT_KINDS,
    Cancelled,
    Completed,
    ContentDelta,
    Continued,
    Event,
    Failed,
    FeedbackOptionRecord,
    FeedbackQuestionRecord,
    MessageRecord,
    Paused,
    ReasoningDelta,
    RequirementRecord,
    RunMetricsData,
    RunRecord,
    Started,
    ToolCallRecord,
    ToolCompleted,
    ToolStarted,
    UserInputFieldRecord,
    metrics_data,
    parse_arguments,
    requirement_of,
)

MODEL_ERROR = "MODEL_ERROR"
MODEL_UNAVAILABLE = "MODEL_UNAVAILABLE"
MODEL_RATE_LIMITED = "MODEL_RATE_LIMITED"
MODEL_TIMEOUT = "MODEL_TIMEOUT"
MODEL_BAD_RESPONSE = "MODEL_BAD_RESPONSE"
MODEL_CODES = (MODEL_ERROR, MODEL_UNAVAILABLE, MODEL_RATE_LIMITED, MODEL_TIMEOUT, MODEL_BAD_RESPONSE)
RUN_FAILED = "RUN_FAILED"
RUN_TIMEOUT = "RUN_TIMEOUT"
RUN_LOST = "RUN_LOST"


def encode_event(event: Event) -> str:
    """One event as compact JSON, for an event log shared between server instances."""
    return json.dumps({"kind": type(event).__name__, **asdict(event)}, separators=(",", ":"))


def decode_event(raw: str | bytes) -> Event:
    data = json.loads(raw)
    kind = EVENT_KINDS[data.pop("kind")]
    if isinstance(data.get("tool_call"), dict):
        data["tool_call"] = ToolCallRecord(**data["tool_call"])
    if isinstance(data.get("metrics"), dict):
        data["metrics"] = RunMetricsData(**data["metrics"])
    if isinstance(data.get("requirements"), list):
        data["requirements"] = tuple(_decode_requirement(item) for item in data["requirements"])
    return kind(**data)


def _decode_requirement(data: dict[str, Any]) -> RequirementRecord:
    questions = tuple(
        FeedbackQuestionRecord(
            header=q["header"],
            question=q["question"],
            options=tuple(FeedbackOptionRecord(**option) for option in q["options"]),
            multi_select=q["multi_select"],
        )
        for q in data["questions"]
    )
    return RequirementRecord(
        id=data["id"],
        kind=data["kind"],
        tool_call=ToolCallRecord(**data["tool_call"]),
        input_fields=tuple(UserInputFieldRecord(**field) for field in data["input_fields"]),
        questions=questions,
        created_at=data["created_at"],
    )


def replay_stored_run(
    run: RunRecord, messages: Sequence[MessageRecord], model_provider: str, model_id: str
) -> list[Event]:
    """A finished run told again from what is stored, once its live events are gone: RunStarted, the
    whole content as one delta, each tool call with its result, and the terminal event."""
    base: dict[str, Any] = {"run_id": run.id, "session_id": run.session_id, "created_at": float(run.created_at)}
    out: list[Event] = [
        Started(**base, index=0, agent_id=run.agent_id, model_provider=model_provider, model_id=model_id)
    ]
    if run.content:
        out.append(ContentDelta(**base, index=len(out), delta=run.content))
    results = {m.tool_call_id: m for m in messages if m.role == "tool" and m.tool_call_id}
    for message in messages:
        for call in message.tool_calls:
            out.append(ToolStarted(**base, index=len(out), tool_call=call))
            answer = results.get(call.id)
            result, failed = (answer.content, answer.tool_call_error) if answer is not None else (None, False)
            out.append(ToolCompleted(**base, index=len(out), tool_call=call, result=result, failed=failed))
    if run.status == "PAUSED":
        out.append(Paused(**base, index=len(out), requirements=run.requirements))
    elif run.status == "CANCELLED":
        out.append(Cancelled(**base, index=len(out), reason=None, content=run.content))
    elif run.status == "ERROR":
        code, reason = run.failure or (RUN_FAILED, "The run failed.")
        out.append(Failed(**base, index=len(out), message=reason, code=code))
    else:
        out.append(Completed(**base, index=len(out), content=run.content, metrics=run.metrics))
    return out


_FAILURE_PREFIX = "agno_graphql."
_RETRY_AFTER = ";retry_after="


def failure_type(code: str, retry_after_seconds: int | None = None) -> str:
    """The `type` of a model failure raised into Agno, which Agno passes on as its RunError's `error_type`:
    the only field of that event an exception can fill, so it carries the code and the wait."""
    suffix = f"{_RETRY_AFTER}{retry_after_seconds}" if retry_after_seconds is not None else ""
    return f"{_FAILURE_PREFIX}{code}{suffix}"


def parse_failure_type(error_type: str | None) -> tuple[str, int | None]:
    """The code and wait `failure_type` put into an error type; MODEL_ERROR for any other error type."""
    if not error_type or not error_type.startswith(_FAILURE_PREFIX):
        return MODEL_ERROR, None
    code, _, wait = error_type[len(_FAILURE_PREFIX) :].partition(_RETRY_AFTER)
    if code not in MODEL_CODES:
        return MODEL_ERROR, None
    return code, int(wait) if wait.isdigit() else None


def _tool_call(tool: Any) -> ToolCallRecord:
    return ToolCallRecord(
        id=str(getattr(tool, "tool_call_id", None) or ""),
        name=str(getattr(tool, "tool_name", None) or ""),
        arguments=parse_arguments(getattr(tool, "tool_args", None)),
    )


def _as_data(requirement: Any) -> Any:
    """Agno's RunRequirement (or its stored dict) as the dict `requirement_of` reads."""
    to_dict = getattr(requirement, "to_dict", None)
    return to_dict() if callable(to_dict) else requirement


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return str(value)


class RunLabels(TypedDict):
    """What every translator's events say about their run."""

    run_id: str
    session_id: str
    agent_id: str
    model_provider: str
    model_id: str


@dataclass
class EventTranslator:
    run_id: str
    session_id: str
    agent_id: str
    model_provider: str
    model_id: str
    _next_index: int = 0
    _content: list[str] = field(default_factory=list)
    _completed_tools: set[str] = field(default_factory=set)
    finished: Event | None = None
    cancel_reason: str | None = None
    timed_out: bool = False
    _held: list[str] = field(default_factory=list)
    # A continuation of a paused run: it opens with Continued (not RunStarted) at the index the pause left, then
    # tells the answered calls Agno streams nothing for (refused, run by the client).
    continuing: bool = False
    _opening_calls: list[tuple[ToolCallRecord, str | None, bool]] = field(default_factory=list)
    _opened: bool = False

    @classmethod
    def continuation(
        cls, labels: RunLabels, *, first_index: int, answered: Sequence[tuple[ToolCallRecord, str | None, bool]]
    ) -> EventTranslator:
        """The translator of a paused run's next part; `answered` are (call, result, failed) to tell first."""
        return cls(**labels, _next_index=first_index, continuing=True, _opening_calls=list(answered))

    @property
    def content_so_far(self) -> str:
        return "".join(self._content)

    def _base(self) -> dict[str, Any]:
        base = {"run_id": self.run_id, "session_id": self.session_id, "index": self._next_index}
        self._next_index += 1
        return {**base, "created_at": time.time()}

    def _start_if_needed(self) -> list[Event]:
        if self.continuing:
            return self._continue_if_needed()
        if self._next_index > 0:
            return []
        return [
            Started(**self._base(), agent_id=self.agent_id, model_provider=self.model_provider, model_id=self.model_id)
        ]

    def _continue_if_needed(self) -> list[Event]:
        if self._opened:
            return []
        self._opened = True
        out: list[Event] = [Continued(**self._base())]
        for call, result, failed in self._opening_calls:
            self._completed_tools.add(call.id)
            out.append(ToolStarted(**self._base(), tool_call=call))
            out.append(ToolCompleted(**self._base(), tool_call=call, result=result, failed=failed))
        return out

    @property
    def holding(self) -> bool:
        return bool(self._held)

    def flush_held(self) -> list[Event]:
        """The content held back so far, as one delta."""
        if not self._held or self.finished is not None:
            return []
        text = "".join(self._held)
        self._held.clear()
        return [ContentDelta(**self._base(), delta=text)]

    def translate(self, agno_event: Any, hold_content: bool = False) -> list[Event]:
        """Our events for one of Agno's (none, one, or a synthesized start plus one). With `hold_content`,
        a content delta is kept back, to go out with the next ones as one delta (see `flush_held`)."""
        if self.finished is not None:
            return []
        kind = getattr(agno_event, "event", None)
        out = self._start_if_needed()
        delta = getattr(agno_event, "content", None) if kind == AgnoEvent.run_content.value else None
        if hold_content and isinstance(delta, str) and delta:
            self._content.append(delta)
            self._held.append(delta)
            return out
        out.extend(self.flush_held())
        if kind == AgnoEvent.run_content.value:
            delta = getattr(agno_event, "content", None)
            reasoning = getattr(agno_event, "reasoning_content", None)
            if isinstance(delta, str) and delta:
                self._content.append(delta)
                out.append(ContentDelta(**self._base(), delta=delta))
            elif isinstance(reasoning, str) and reasoning:
                out.append(ReasoningDelta(**self._base(), delta=reasoning))
        elif kind == AgnoEvent.reasoning_content_delta.value:
            reasoning = getattr(agno_event, "reasoning_content", None)
            if isinstance(reasoning, str) and reasoning:
                out.append(ReasoningDelta(**self._base(), delta=reasoning))
        elif kind == AgnoEvent.tool_call_started.value:
            out.append(ToolStarted(**self._base(), tool_call=_tool_call(agno_event.tool)))
        elif kind in (AgnoEvent.tool_call_completed.value, AgnoEvent.tool_call_error.value):
            out.extend(self._tool_completed(agno_event, kind == AgnoEvent.tool_call_error.value))
        elif kind == AgnoEvent.run_completed.value:
            content = _text(getattr(agno_event, "content", None))
            metrics = metrics_data(getattr(agno_event, "metrics", None))
            out.append(self._finish(Completed(**self._base(), content=content, metrics=metrics)))
        elif kind == AgnoEvent.run_error.value:
            message = _text(getattr(agno_event, "content", None)) or "The model failed."
            code, retry_after = parse_failure_type(getattr(agno_event, "error_type", None))
            failed = Failed(**self._base(), message=message, code=code, retry_after_seconds=retry_after)
            out.append(self._finish(failed))
        elif kind == AgnoEvent.run_paused.value:
            requirements = tuple(
                r
                for r in (requirement_of(_as_data(item)) for item in getattr(agno_event, "requirements", None) or [])
                if r is not None
            )
            out.append(self._finish(Paused(**self._base(), requirements=requirements)))
        elif kind == AgnoEvent.run_cancelled.value and self.timed_out:
            out.append(self._finish(Failed(**self._base(), message="The run took too long.", code=RUN_TIMEOUT)))
        elif kind == AgnoEvent.run_cancelled.value:
            out.extend(self._unsent_content(agno_event))
            reason = self.cancel_reason or _text(getattr(agno_event, "reason", None)) or "Cancelled."
            content = self.content_so_far or None
            out.append(self._finish(Cancelled(**self._base(), reason=reason, content=content)))
        return out

    def _unsent_content(self, agno_event: Any) -> list[Event]:
        """Agno may store a delta it never streamed (it checks for cancellation after adding it): send it, so
        that what followers saw adds up to what is stored."""
        stored = _text(getattr(agno_event, "content", None))
        sent = self.content_so_far
        if not stored or stored == getattr(agno_event, "reason", None) or not stored.startswith(sent):
            return []
        rest = stored[len(sent) :]
        if not rest:
            return []
        self._content.append(rest)
        return [ContentDelta(**self._base(), delta=rest)]

    def _tool_completed(self, agno_event: Any, errored: bool) -> list[Event]:
        tool = agno_event.tool
        call = _tool_call(tool)
        if call.id and call.id in self._completed_tools:
            return []
        self._completed_tools.add(call.id)
        failed = errored or bool(getattr(tool, "tool_call_error", False))
        result = _text(getattr(tool, "result", None)) or (_text(getattr(agno_event, "error", None)) if failed else None)
        return [ToolCompleted(**self._base(), tool_call=call, result=result, failed=failed)]

    def _finish(self, event: Event) -> Event:
        self.finished = event
        return event

    def fail(self, message: str, code: str = RUN_FAILED) -> list[Event]:
        """End a stream that broke off without a terminal event of its own."""
        if self.finished is not None:
            return []
        out = self._start_if_needed() + self.flush_held()
        out.append(self._finish(Failed(**self._base(), message=message, code=code)))
        return out

    def cancel(self, reason: str) -> list[Event]:
        if self.finished is not None:
            return []
        if self.timed_out:
            return self.fail("The run took too long.", RUN_TIMEOUT)
        out = self._start_if_needed() + self.flush_held()
        content = self.content_so_far or None
        out.append(self._finish(Cancelled(**self._base(), reason=reason, content=content)))
        return out

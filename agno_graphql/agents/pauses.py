"""A paused run's requirements handed back to Agno, answered.

The answers have been checked against the stored requirements (`services.answers.check_answers`); here they are
applied to Agno's own `RunRequirement`s, rebuilt from what Agno stored when the run paused, so any instance can
continue a run that another one paused.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from agno.run.requirement import RunRequirement

from agno_graphql.records import (
    CONFIRMATION,
    EXTERNAL_EXECUTION,
    USER_FEEDBACK,
    USER_INPUT,
    RequirementAnswer,
    ToolCallRecord,
    requirement_of,
)

# What the model is told, and the tool message says, when a call is refused without a note.
REFUSED = "Refused by the user."
# How Agno words the tool message of answered questions (agent/_tools.py, checked on agno 3.1.10), so that the
# streamed result reads as the stored one; tests/test_pauses.py compares the two.
FEEDBACK_RECEIVED = "User feedback received: "


def answer_requirements(
    stored: Sequence[Mapping[str, Any]], answers: Sequence[RequirementAnswer]
) -> tuple[list[RunRequirement], list[tuple[ToolCallRecord, str | None, bool]]]:
    """Agno's requirements resolved by the answers, and the calls Agno will stream nothing for (a refused call,
    a call the client ran, the questions answered) as (call, result, failed), for the continuation to tell."""
    by_id = {answer.requirement_id: answer for answer in answers}
    resolved: list[RunRequirement] = []
    told: list[tuple[ToolCallRecord, str | None, bool]] = []
    for data in stored:
        record = requirement_of(dict(data))
        answer = by_id.get(record.id) if record is not None else None
        if record is None or answer is None:
            continue
        requirement = RunRequirement.from_dict(dict(data))
        if record.kind == CONFIRMATION and answer.confirmed:
            requirement.confirm()
        elif record.kind == CONFIRMATION:
            note = answer.note or REFUSED
            requirement.reject(note)
            told.append((record.tool_call, note, True))
        elif record.kind == USER_INPUT:
            # A null keeps what the model filled in (`check_answers` refused one for a field the model left empty).
            given = {name: value for name, value in dict(answer.values or {}).items() if value is not None}
            requirement.provide_user_input(given)
        elif record.kind == USER_FEEDBACK:
            chosen = {q.question: list(c) for q, c in zip(record.questions, answer.selections or (), strict=True)}
            requirement.provide_user_feedback(chosen)
            choices = [{"question": question, "selected": selected} for question, selected in chosen.items()]
            told.append((record.tool_call, FEEDBACK_RECEIVED + json.dumps(choices, ensure_ascii=False), False))
        elif record.kind == EXTERNAL_EXECUTION:
            requirement.set_external_execution_result(answer.result or "")
            told.append((record.tool_call, answer.result, False))
        resolved.append(requirement)
    return resolved, told

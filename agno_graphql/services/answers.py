"""Answers to a paused run's requirements, checked before anything changes.

Every open requirement is answered once, with the fields its kind takes and values of the right shape; the first
answer that is not says which requirement (`extensions.requirementId`) and why, and the run stays paused.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from agno_graphql.errors import BadUserInput
from agno_graphql.records import (
    CONFIRMATION,
    EXTERNAL_EXECUTION,
    USER_FEEDBACK,
    USER_INPUT,
    RequirementAnswer,
    RequirementRecord,
    UserInputFieldRecord,
)

# The fields of RequirementAnswer each kind takes (requirementId aside).
_FIELDS = {
    CONFIRMATION: {"confirmed", "note"},
    USER_INPUT: {"values"},
    USER_FEEDBACK: {"selections"},
    EXTERNAL_EXECUTION: {"result"},
}
MAX_RESULT_CHARS = 100_000


def check_answers(requirements: Sequence[RequirementRecord], answers: Sequence[RequirementAnswer]) -> None:
    """BAD_USER_INPUT naming the requirement when an answer is missing, unknown, repeated or of the wrong shape."""
    open_ids = {requirement.id for requirement in requirements}
    seen: set[str] = set()
    for answer in answers:
        if answer.requirement_id not in open_ids:
            raise _refused(answer.requirement_id, "This run has no open requirement with this id.")
        if answer.requirement_id in seen:
            raise _refused(answer.requirement_id, "This requirement is answered twice.")
        seen.add(answer.requirement_id)
    by_id = {answer.requirement_id: answer for answer in answers}
    for requirement in requirements:
        given = by_id.get(requirement.id)
        if given is None:
            raise _refused(requirement.id, f"Requirement {requirement.id} ({requirement.kind}) is not answered.")
        _check_answer(requirement, given)


def _refused(requirement_id: str, message: str) -> BadUserInput:
    return BadUserInput(message, argument="answers", requirementId=requirement_id)


def _given(answer: RequirementAnswer) -> set[str]:
    values = {
        "confirmed": answer.confirmed,
        "note": answer.note,
        "values": answer.values,
        "selections": answer.selections,
        "result": answer.result,
    }
    return {name for name, value in values.items() if value is not None}


def _check_answer(requirement: RequirementRecord, answer: RequirementAnswer) -> None:
    stray = _given(answer) - _FIELDS[requirement.kind]
    if stray:
        raise _refused(requirement.id, f"A {requirement.kind} answer takes no `{sorted(stray)[0]}`.")
    if requirement.kind == CONFIRMATION and answer.confirmed is None:
        raise _refused(requirement.id, "A CONFIRMATION answer needs `confirmed`: true runs the tool, false refuses it.")
    if requirement.kind == USER_INPUT:
        _check_values(requirement, answer.values)
    if requirement.kind == USER_FEEDBACK:
        _check_selections(requirement, answer.selections)
    if requirement.kind == EXTERNAL_EXECUTION:
        if answer.result is None:
            raise _refused(requirement.id, "An EXTERNAL_EXECUTION answer needs `result`: what the tool gave.")
        if len(answer.result) > MAX_RESULT_CHARS:
            raise _refused(requirement.id, f"`result` is longer than {MAX_RESULT_CHARS} characters.")


def _check_values(requirement: RequirementRecord, values: Any) -> None:
    if not isinstance(values, dict):
        raise _refused(requirement.id, 'A USER_INPUT answer needs `values`, an object: {"fieldName": value, ...}.')
    fields = {field.name: field for field in requirement.input_fields}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise _refused(requirement.id, f"`values` has no field `{unknown[0]}` to fill in.")
    for field in requirement.input_fields:
        value = values.get(field.name)
        if value is None and field.value is None:
            raise _refused(requirement.id, f"`values` lacks `{field.name}`.")
        if value is not None and not _of_type(value, field):
            raise _refused(requirement.id, f"`values.{field.name}` must be of type {field.type}.")


def _of_type(value: Any, field: UserInputFieldRecord) -> bool:
    if field.type == "str":
        return isinstance(value, str)
    if field.type == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if field.type == "float":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if field.type == "bool":
        return isinstance(value, bool)
    if field.type == "list":
        return isinstance(value, list)
    if field.type == "dict":
        return isinstance(value, dict)
    return True  # a type Agno names that JSON cannot tell: taken as given


def _check_selections(requirement: RequirementRecord, selections: Sequence[Sequence[str]] | None) -> None:
    questions = requirement.questions
    if selections is None or len(selections) != len(questions):
        raise _refused(
            requirement.id,
            f"A USER_FEEDBACK answer needs `selections`: one list of labels per question ({len(questions)}).",
        )
    for number, (question, chosen) in enumerate(zip(questions, selections, strict=True), start=1):
        labels = {option.label for option in question.options}
        wrong = [label for label in chosen if label not in labels]
        if wrong:
            raise _refused(requirement.id, f"{wrong[0]!r} is not an option of question {number}.")
        if len(set(chosen)) != len(chosen):
            raise _refused(requirement.id, f"Question {number} has an option chosen twice.")
        if question.multi_select and not chosen:
            raise _refused(requirement.id, f"Question {number} needs at least one option.")
        if not question.multi_select and len(chosen) != 1:
            raise _refused(requirement.id, f"Question {number} takes exactly one option.")

"""Input types of the API."""

from __future__ import annotations

from typing import Any, NewType

import strawberry
from graphql import GraphQLError
from starlette.datastructures import UploadFile
from strawberry.scalars import JSON

from agno_graphql import records
from agno_graphql.errors import BAD_USER_INPUT
from agno_graphql.records import SessionOrdering
from agno_graphql.schema.enums import BusyPolicy, DisconnectPolicy, OrderDirection, SessionOrderField


def like_run_agent_on_disconnect() -> DisconnectPolicy:
    """The `onDisconnect` of the inputs that start or go on with a run besides runAgent's."""
    field: DisconnectPolicy = strawberry.field(
        default=DisconnectPolicy.CONTINUE,
        description="As for runAgent: CANCEL cancels the run when this subscription ends before the run does.",
    )
    return field


@strawberry.input
class SessionOrder:
    field: SessionOrderField = SessionOrderField.UPDATED_AT
    direction: OrderDirection = OrderDirection.DESC

    @staticmethod
    def as_ordering(order_by: SessionOrder | None) -> SessionOrdering:
        """The ordering for the services; newest activity first when not given."""
        if order_by is None:
            return SessionOrdering()
        return SessionOrdering(field=order_by.field.value, descending=order_by.direction == OrderDirection.DESC)


@strawberry.input
class CreateSessionInput:
    agent_id: strawberry.ID
    name: str | None = None
    session_id: strawberry.ID | None = None


@strawberry.input
class RenameSessionInput:
    session_id: strawberry.ID
    name: str


@strawberry.input
class DeleteSessionInput:
    session_id: strawberry.ID


@strawberry.input(description="Start a run. Without sessionId the run starts a new session.")
class RunAgentInput:
    agent_id: strawberry.ID
    session_id: strawberry.ID | None = None
    message: str
    on_disconnect: DisconnectPolicy = strawberry.field(
        default=DisconnectPolicy.CONTINUE,
        description="CONTINUE (the default): the run goes on and can be followed again with runEvents. "
        "CANCEL: the run is cancelled when this subscription ends before the run does.",
    )
    if_busy: BusyPolicy = strawberry.field(
        default=BusyPolicy.REJECT,
        description="REJECT (the default): SESSION_BUSY while a run goes in the session. INTERRUPT: that run is "
        "cancelled (what it said stays in the conversation), then this one starts, ahead of any waiting. ENQUEUE: "
        "this one is stored PENDING and waits in line (RunQueued first), starting once the runs before it have "
        "ended; at most MAX_QUEUED_PER_SESSION wait (RATE_LIMITED beyond).",
    )
    attachments: list[strawberry.ID] | None = strawberry.field(
        default_factory=list,
        description="Ids from uploadAttachment, sent with the message (at most MAX_ATTACHMENTS_PER_MESSAGE); each "
        "belongs to the first session it is sent in.",
    )


@strawberry.input
class CancelRunInput:
    run_id: strawberry.ID


@strawberry.input(description="The answer to one requirement of a paused run: the fields its kind takes.")
class RequirementAnswer:
    requirement_id: strawberry.ID
    confirmed: bool | None = strawberry.field(
        default=None, description="CONFIRMATION: true runs the tool, false refuses it."
    )
    note: str | None = strawberry.field(default=None, description="CONFIRMATION: why; told to the model when refused.")
    values: JSON | None = strawberry.field(default=None, description='USER_INPUT: {"fieldName": value, ...}.')
    selections: list[list[str]] | None = strawberry.field(
        default=None, description="USER_FEEDBACK: the chosen option labels, one list per question, in order."
    )
    result: str | None = strawberry.field(
        default=None, description="EXTERNAL_EXECUTION: what the tool gave when the client ran it."
    )

    def as_answer(self) -> records.RequirementAnswer:
        return records.RequirementAnswer(
            requirement_id=str(self.requirement_id),
            confirmed=self.confirmed,
            note=self.note,
            values=self.values,
            selections=tuple(tuple(chosen) for chosen in self.selections) if self.selections is not None else None,
            result=self.result,
        )


@strawberry.input(description="Answer every open requirement of a paused run at once, and stream the rest of it.")
class ContinueRunInput:
    run_id: strawberry.ID
    answers: list[RequirementAnswer]
    on_disconnect: DisconnectPolicy = like_run_agent_on_disconnect()


@strawberry.input(description="A new answer to the user message of a session's latest run.")
class RegenerateRunInput:
    run_id: strawberry.ID
    instructions: str | None = strawberry.field(
        default=None, description="For this answer only: never shown in messages or in later history."
    )
    on_disconnect: DisconnectPolicy = like_run_agent_on_disconnect()


@strawberry.input(description="Change a user message of the conversation and answer it again.")
class EditMessageInput:
    message_id: strawberry.ID
    message: str
    on_disconnect: DisconnectPolicy = like_run_agent_on_disconnect()
    attachments: list[strawberry.ID] | None = strawberry.field(
        default_factory=list, description="Ids from uploadAttachment, sent with the edited message."
    )


NOT_A_FILE = "An Upload is a file of a GraphQL multipart request, put in a variable by its map; nothing else is one."


def _file(value: Any) -> UploadFile:
    if not isinstance(value, UploadFile):
        raise GraphQLError(NOT_A_FILE, extensions={"code": BAD_USER_INPUT})
    return value


def _no_literal(node: Any, variables: Any = None) -> UploadFile:
    raise GraphQLError(NOT_A_FILE, extensions={"code": BAD_USER_INPUT})


# Strawberry's Upload takes any value; a string or number written where a file goes would reach the resolver.
Upload: Any = strawberry.scalar(
    NewType("Upload", object),
    name="Upload",
    description="A file of a GraphQL multipart request (https://github.com/jaydenseric/graphql-multipart-request-spec).",
    serialize=lambda value: None,
    parse_value=_file,
    parse_literal=_no_literal,
)


@strawberry.input(description="A file to keep for a message (GraphQL multipart request), checked from its bytes.")
class UploadAttachmentInput:
    file: Upload
    name: str | None = strawberry.field(default=None, description="Its name; the file's own name when absent.")


@strawberry.input(description="A new session holding a session's conversation, or its first part.")
class ForkSessionInput:
    session_id: strawberry.ID
    up_to_message_id: strawberry.ID | None = strawberry.field(
        default=None,
        description="The last message to copy, an assistant message of the conversation; all of it when absent.",
    )
    name: str | None = strawberry.field(
        default=None, description="The fork's name; the source's with \" (copy)\" when absent."
    )

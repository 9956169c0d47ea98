"""Input types of the API."""

from __future__ import annotations

import strawberry

from agno_graphql.records import SessionOrdering
from agno_graphql.schema.enums import DisconnectPolicy, OrderDirection, SessionOrderField


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


@strawberry.input
class CancelRunInput:
    run_id: strawberry.ID

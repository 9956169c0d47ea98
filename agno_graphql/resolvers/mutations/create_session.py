from __future__ import annotations

import strawberry

from agno_graphql.schema.inputs import CreateSessionInput
from agno_graphql.schema.payloads import CreateSessionPayload
from agno_graphql.schema.types import Session


async def create_session(info: strawberry.Info, input: CreateSessionInput) -> CreateSessionPayload:
    """Store an empty session now; it is listed before its first run."""
    record = await info.context.services.create_session(
        info.context.user_id,
        str(input.agent_id),
        input.name,
        str(input.session_id) if input.session_id is not None else None,
    )
    return CreateSessionPayload(session=Session.from_record(record))

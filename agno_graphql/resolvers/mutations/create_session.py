from __future__ import annotations

from agno_graphql.context import Info
from agno_graphql.schema.inputs import CreateSessionInput
from agno_graphql.schema.payloads import CreateSessionPayload
from agno_graphql.schema.types import Session


async def create_session(info: Info, input: CreateSessionInput) -> CreateSessionPayload:
    """Store an empty session now; it is listed before its first run."""
    record = await info.context.services.sessions.create(
        info.context.user_id,
        str(input.agent_id),
        name=input.name,
        session_id=str(input.session_id) if input.session_id is not None else None,
    )
    return CreateSessionPayload(session=Session.from_record(record))

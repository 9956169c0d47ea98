from __future__ import annotations

from agno_graphql.context import Info
from agno_graphql.schema.inputs import ForkSessionInput
from agno_graphql.schema.payloads import ForkSessionPayload
from agno_graphql.schema.types import Session


async def fork_session(info: Info, input: ForkSessionInput) -> ForkSessionPayload:
    record = await info.context.services.sessions.fork(
        info.context.user_id,
        str(input.session_id),
        up_to_message_id=str(input.up_to_message_id) if input.up_to_message_id is not None else None,
        name=input.name,
    )
    return ForkSessionPayload(session=Session.from_record(record))

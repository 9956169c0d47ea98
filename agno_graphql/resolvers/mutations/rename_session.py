from __future__ import annotations

from agno_graphql.context import Info
from agno_graphql.schema.inputs import RenameSessionInput
from agno_graphql.schema.payloads import RenameSessionPayload
from agno_graphql.schema.types import Session


async def rename_session(info: Info, input: RenameSessionInput) -> RenameSessionPayload:
    record = await info.context.services.sessions.rename(info.context.user_id, str(input.session_id), input.name)
    return RenameSessionPayload(session=Session.from_record(record))

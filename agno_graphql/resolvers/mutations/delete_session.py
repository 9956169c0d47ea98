from __future__ import annotations

import strawberry

from agno_graphql.context import Info
from agno_graphql.schema.inputs import DeleteSessionInput
from agno_graphql.schema.payloads import DeleteSessionPayload


async def delete_session(info: Info, input: DeleteSessionInput) -> DeleteSessionPayload:
    """Remove the session and its runs."""
    deleted = await info.context.services.sessions.delete(info.context.user_id, str(input.session_id))
    return DeleteSessionPayload(deleted_session_id=strawberry.ID(deleted))

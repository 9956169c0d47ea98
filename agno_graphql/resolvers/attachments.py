from __future__ import annotations

import strawberry

from agno_graphql.context import Info
from agno_graphql.schema.types import Attachment


async def resolve_attachment(info: Info, id: strawberry.ID) -> Attachment | None:
    record = await info.context.services.attachments.get(info.context.user_id, str(id))
    return Attachment.from_record(record) if record is not None else None

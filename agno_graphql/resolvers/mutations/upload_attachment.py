from __future__ import annotations

from typing import cast

from agno_graphql.context import Info
from agno_graphql.schema.inputs import UploadAttachmentInput
from agno_graphql.schema.payloads import UploadAttachmentPayload
from agno_graphql.schema.types import Attachment
from agno_graphql.services.attachments import UploadedFile


async def upload_attachment(info: Info, input: UploadAttachmentInput) -> UploadAttachmentPayload:
    # Strawberry declares Upload as bytes; over ASGI it is the request's spooled file (Starlette's UploadFile).
    upload = cast(UploadedFile, input.file)
    record = await info.context.services.attachments.upload(info.context.user_id, upload, input.name)
    return UploadAttachmentPayload(attachment=Attachment.from_record(record))

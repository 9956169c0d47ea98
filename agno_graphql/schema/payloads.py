"""Mutation payloads."""

from __future__ import annotations

import strawberry

from agno_graphql.schema.types import Attachment, Run, Session


@strawberry.type
class CreateSessionPayload:
    session: Session


@strawberry.type
class RenameSessionPayload:
    session: Session


@strawberry.type
class DeleteSessionPayload:
    deleted_session_id: strawberry.ID


@strawberry.type
class CancelRunPayload:
    run: Run


@strawberry.type
class ForkSessionPayload:
    session: Session


@strawberry.type
class UploadAttachmentPayload:
    attachment: Attachment

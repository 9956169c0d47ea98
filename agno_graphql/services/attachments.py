"""Attachments: upload (checked from the bytes, stored in chunks), the viewer's own, bound to the session they are
first sent in, removed with it or when never sent, and served through signed links."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import BinaryIO, Protocol
from uuid import uuid4

from agno_graphql.db import attachments as rows
from agno_graphql.db.database import Database
from agno_graphql.errors import BadUserInput, NotFound
from agno_graphql.media.kinds import Measured, measure
from agno_graphql.media.links import LinkSigner
from agno_graphql.media.storage import AttachmentStorage, content_hash, storage_key
from agno_graphql.records import AttachmentRecord

log = logging.getLogger(__name__)

_NAME_CHARS = 255
# How often the uploads never sent are looked for (a fraction of how long they are kept).
_SWEEP_FRACTION = 10


class UploadedFile(Protocol):
    """A file of a multipart request, spooled by Starlette (`UploadFile`)."""

    file: BinaryIO
    filename: str | None
    content_type: str | None


@dataclass(frozen=True)
class AttachmentLimits:
    max_bytes: int
    max_per_message: int
    types: tuple[str, ...]
    unused_seconds: float


class AttachmentService:
    def __init__(self, db: Database, storage: AttachmentStorage, links: LinkSigner, limits: AttachmentLimits) -> None:
        self._db = db
        self._storage = storage
        self._links = links
        self._limits = limits
        self._sweeper: asyncio.Task[None] | None = None

    @property
    def storage(self) -> AttachmentStorage:
        return self._storage

    async def upload(self, user_id: str, upload: UploadedFile, name: str | None = None) -> AttachmentRecord:
        """Check and keep an uploaded file; BAD_USER_INPUT (and nothing kept) when it is empty, too big, of a type
        not accepted, or not what its name or declared type say."""
        name = _clean_name(name or upload.filename or "")
        measured = await asyncio.to_thread(self._measure, upload.file, name, upload.content_type or "")
        digest = await asyncio.to_thread(content_hash, upload.file)
        attachment_id = str(uuid4())
        key = storage_key(attachment_id, digest, name, measured.mime_type, prefix=self._storage.prefix)
        await self._storage.put(upload.file, key, measured.mime_type, name)
        record = _record(attachment_id, user_id, name, measured, key, digest)
        try:
            await rows.insert(self._db, record)
        except BaseException:
            await self._storage.delete([key])
            raise
        return record

    def _measure(self, file: BinaryIO, name: str, declared: str) -> Measured:
        file.seek(0, 2)
        size = file.tell()
        if size > self._limits.max_bytes:
            raise BadUserInput(
                f"{name!r} is {size} bytes; the most an attachment may be is {self._limits.max_bytes}.",
                maxBytes=self._limits.max_bytes,
            )
        return measure(file, name, declared, self._limits.types)

    async def get(self, user_id: str, attachment_id: str) -> AttachmentRecord | None:
        """The viewer's attachment; None when there is none or it is someone else's."""
        record = await rows.get(self._db, attachment_id)
        return record if record is not None and record.user_id == user_id else None

    async def check(self, user_id: str, session_id: str | None, ids: Sequence[str]) -> list[AttachmentRecord]:
        """The attachments a message sends, in the order given: NOT_FOUND for one that is missing or someone else's,
        BAD_USER_INPUT for too many, or for one sent in another session (any session, for a message that starts
        one)."""
        wanted = list(dict.fromkeys(str(i) for i in ids))
        if not wanted:
            return []
        if len(wanted) > self._limits.max_per_message:
            raise BadUserInput(
                f"A message may carry at most {self._limits.max_per_message} attachments.",
                maxAttachments=self._limits.max_per_message,
            )
        found = await rows.get_many(self._db, wanted)
        for attachment_id in wanted:
            _check_one(found.get(attachment_id), attachment_id, user_id, session_id)
        return [found[i] for i in wanted]

    async def bind(self, user_id: str, session_id: str, records: Sequence[AttachmentRecord]) -> None:
        """Make the session the one the unsent attachments belong to, as their message starts a run in it."""
        unsent = [r.id for r in records if r.session_id is None]
        if not unsent:
            return
        await rows.bind_to_session(self._db, unsent, user_id, session_id)
        found = await rows.get_many(self._db, unsent)
        # Removed as never sent since the check, or sent in another session by a second tab meanwhile.
        for attachment_id in unsent:
            record = found.get(attachment_id)
            _check_one(record, attachment_id, user_id, session_id)
            if record is None or record.session_id != session_id:
                raise BadUserInput("This attachment was sent in another session.", attachmentId=attachment_id)

    def url(self, attachment_id: str, user_id: str, name: str) -> str:
        return self._links.url(attachment_id, user_id, name)

    async def download(
        self, attachment_id: str, expires: str, signature: str
    ) -> tuple[AttachmentRecord, AsyncIterator[bytes]] | None:
        """The attachment a signed link names and its bytes; None when the link is wrong or expired, or the file
        is gone."""
        record = await rows.get(self._db, attachment_id)
        if record is None or not self._links.valid(attachment_id, record.user_id, expires, signature):
            return None
        return record, self._storage.chunks(record.storage_key)

    async def delete_for_session(self, session_id: str) -> None:
        """With the session: its attachments' rows and bytes."""
        records = await rows.of_session(self._db, session_id)
        await self._remove(records)

    async def remove_unsent(self, now: float | None = None) -> int:
        """Remove the uploads never sent within the time they are kept; how many."""
        before = (time.time() if now is None else now) - self._limits.unused_seconds
        records = await rows.unsent_before(self._db, before)
        await self._remove(records, unsent_only=True)
        return len(records)

    async def _remove(self, records: Sequence[AttachmentRecord], *, unsent_only: bool = False) -> None:
        if not records:
            return
        ids = [r.id for r in records]
        if unsent_only:
            ids = await rows.remove_unsent(self._db, ids)
        else:
            await rows.remove(self._db, ids)
        gone = set(ids)
        await self._storage.delete([r.storage_key for r in records if r.id in gone])

    async def start(self) -> None:
        try:
            await self._storage.prepare()
        except Exception:
            log.warning("the attachment storage is not ready: uploads fail until it is", exc_info=True)
        self._sweeper = asyncio.create_task(self._sweep_unsent())

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
            self._sweeper = None

    async def _sweep_unsent(self) -> None:
        interval = max(1.0, self._limits.unused_seconds / _SWEEP_FRACTION)
        while True:
            try:
                await self.remove_unsent()
            except Exception:
                log.warning("could not remove the attachments never sent", exc_info=True)
            await asyncio.sleep(interval)


def _check_one(record: AttachmentRecord | None, attachment_id: str, user_id: str, session_id: str | None) -> None:
    if record is None or record.user_id != user_id:
        raise NotFound("Attachment not found.", attachmentId=attachment_id)
    if record.session_id is not None and record.session_id != session_id:
        raise BadUserInput("This attachment was sent in another session.", attachmentId=attachment_id)


def _clean_name(raw: str) -> str:
    # Only the last part of a path a browser may send, without control characters.
    name = raw.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable()).strip()
    return name[:_NAME_CHARS] or "attachment"


def _record(attachment_id: str, user_id: str, name: str, measured: Measured, key: str, digest: str) -> AttachmentRecord:
    return AttachmentRecord(
        id=attachment_id,
        user_id=user_id,
        session_id=None,
        name=name,
        mime_type=measured.mime_type,
        kind=measured.kind,
        byte_size=measured.byte_size,
        created_at=time.time(),
        storage_key=key,
        content_hash=digest,
        width=measured.width,
        height=measured.height,
        first_line=measured.first_line,
    )

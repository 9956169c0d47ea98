"""Attachment bytes in Agno's media storage, written and read in chunks.

Agno's `MediaStorage.upload` takes the whole bytes; an upload here is copied from the spooled request file into the
storage Agno reads, under Agno's key scheme (`build_storage_key`), and described by Agno's `MediaReference`, so a
run that sends it hands Agno a reference it resolves itself (`Agent(media_storage=...)`).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from tempfile import mkstemp
from typing import Any, BinaryIO, Protocol

from agno.media.reference import MediaReference
from agno.media.storage.base import AsyncMediaStorage
from agno.media.storage.local.async_local import AsyncLocalMediaStorage
from agno.media.storage.utils import build_storage_key

from agno_graphql.media.kinds import CHUNK_BYTES
from agno_graphql.media.types import AUDIO, IMAGE, VIDEO
from agno_graphql.records import AttachmentRecord

# Agno's name for each kind in a reference (`MediaReference.media_type`).
_AGNO_MEDIA_TYPE = {IMAGE: "image", AUDIO: "audio", VIDEO: "video"}


class AttachmentStorage(Protocol):
    """Where attachment bytes live: the Agno storage agents are given, plus chunked writes and reads."""

    @property
    def agno(self) -> AsyncMediaStorage: ...

    async def put(self, file: BinaryIO, key: str, mime_type: str, name: str) -> None: ...

    def chunks(self, key: str) -> AsyncIterator[bytes]: ...

    async def delete(self, keys: Sequence[str]) -> None: ...


def content_hash(file: BinaryIO) -> str:
    file.seek(0)
    digest = hashlib.sha256()
    while chunk := file.read(CHUNK_BYTES):
        digest.update(chunk)
    file.seek(0)
    return digest.hexdigest()


def storage_key(attachment_id: str, digest: str, name: str, mime_type: str, prefix: str = "") -> str:
    """Agno's key for a medium: its id (here with the content's hash, as Agno's offload makes it), the extension
    from the name or the type."""
    return build_storage_key(f"{attachment_id}-{digest[:16]}", prefix=prefix, filename=name, mime_type=mime_type)


def reference(record: AttachmentRecord, storage: AsyncMediaStorage, session_id: str | None) -> MediaReference:
    """Agno's reference to a stored attachment, as a run sends it (Agno resolves the bytes from the storage)."""
    return MediaReference(
        media_id=record.id,
        storage_key=record.storage_key,
        session_id=session_id,
        storage_backend=storage.backend_name,
        bucket=storage.bucket,
        region=storage.region,
        mime_type=record.mime_type,
        filename=record.name,
        size=record.byte_size,
        content_hash=record.content_hash,
        media_type=_AGNO_MEDIA_TYPE.get(record.kind, "file"),
    )


def facts(record: AttachmentRecord) -> dict[str, Any]:
    """What was measured at upload, as Agno's media `metadata` (Image has no name field): the model and the history
    read it without the bytes."""
    values: dict[str, Any] = {
        "attachment_id": record.id,
        "name": record.name,
        "kind": record.kind,
        "byte_size": record.byte_size,
        "created_at": record.created_at,
    }
    for key in ("width", "height", "first_line"):
        if (value := getattr(record, key)) is not None:
            values[key] = value
    return values


class LocalStorage:
    """A folder (by default under the state folder): one instance, or several that share it at the same path."""

    def __init__(self, base_path: Path) -> None:
        self._agno = AsyncLocalMediaStorage(base_path=str(base_path))
        self.base_path = Path(self._agno.base_path)

    @property
    def agno(self) -> AsyncMediaStorage:
        return self._agno

    def _path(self, key: str) -> Path:
        path = (self.base_path / key).resolve()
        if self.base_path not in path.parents:
            raise ValueError(f"storage key {key!r} is outside the storage folder")
        return path

    async def put(self, file: BinaryIO, key: str, mime_type: str, name: str) -> None:
        await asyncio.to_thread(self._put, file, key, mime_type, name)

    def _put(self, file: BinaryIO, key: str, mime_type: str, name: str) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Written beside, then renamed into place: a reader never sees half a file (as Agno's own upload does).
        fd, partial = mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as out:
                file.seek(0)
                shutil.copyfileobj(file, out, CHUNK_BYTES)
                size = out.tell()
            os.replace(partial, path)
        except BaseException:
            Path(partial).unlink(missing_ok=True)
            raise
        sidecar = {"original-filename": name, "mime_type": mime_type, "size": size}
        path.with_suffix(path.suffix + ".meta.json").write_text(json.dumps(sidecar))

    async def chunks(self, key: str) -> AsyncIterator[bytes]:
        handle = await asyncio.to_thread(self._path(key).open, "rb")
        try:
            while chunk := await asyncio.to_thread(handle.read, CHUNK_BYTES):
                yield chunk
        finally:
            handle.close()

    async def delete(self, keys: Sequence[str]) -> None:
        await self._agno.delete_many(list(keys))

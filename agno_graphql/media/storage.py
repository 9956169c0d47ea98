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
from dataclasses import dataclass
from pathlib import Path
from tempfile import mkstemp
from typing import Any, BinaryIO, Protocol
from urllib.parse import quote

import aioboto3
from agno.media.reference import MediaReference
from agno.media.storage.base import AsyncMediaStorage
from agno.media.storage.local.async_local import AsyncLocalMediaStorage
from agno.media.storage.s3.async_s3 import AsyncS3MediaStorage
from agno.media.storage.utils import build_storage_key
from boto3.s3.transfer import TransferConfig
from botocore.config import Config as BotoConfig
from botocore.exceptions import ClientError

from agno_graphql.media.kinds import CHUNK_BYTES
from agno_graphql.media.types import AUDIO, IMAGE, VIDEO
from agno_graphql.records import AttachmentRecord

# Agno's name for each kind in a reference (`MediaReference.media_type`).
_AGNO_MEDIA_TYPE = {IMAGE: "image", AUDIO: "audio", VIDEO: "video"}


class AttachmentStorage(Protocol):
    """Where attachment bytes live: the Agno storage agents are given, plus chunked writes and reads."""

    @property
    def agno(self) -> AsyncMediaStorage: ...

    @property
    def prefix(self) -> str: ...

    async def put(self, file: BinaryIO, key: str, mime_type: str, name: str) -> None: ...

    def chunks(self, key: str) -> AsyncIterator[bytes]: ...

    async def delete(self, keys: Sequence[str]) -> None: ...

    async def prepare(self) -> None: ...


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
    def prefix(self) -> str:
        return ""

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

    async def prepare(self) -> None:
        """The folder exists (Agno's storage made it)."""


@dataclass(frozen=True)
class S3Settings:
    bucket: str
    prefix: str = ""
    endpoint_url: str | None = None
    region: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None


# Parts of a multipart upload, and reads of a download: what one upload or download holds in memory at a time.
_S3_PART_BYTES = 8 * 1024 * 1024


class S3Storage:
    """An S3-compatible bucket (AWS, MinIO, Ceph...): what several instances share. Uploads go up in parts from
    the spooled file (boto3's managed transfer), downloads come down in chunks."""

    def __init__(self, settings: S3Settings) -> None:
        self._settings = settings
        self._agno = AsyncS3MediaStorage(
            bucket=settings.bucket,
            prefix=settings.prefix,
            region=settings.region,
            endpoint_url=settings.endpoint_url,
            aws_access_key_id=settings.access_key_id,
            aws_secret_access_key=settings.secret_access_key,
        )
        self._session = aioboto3.Session(
            aws_access_key_id=settings.access_key_id,
            aws_secret_access_key=settings.secret_access_key,
            region_name=settings.region,
        )

    @property
    def agno(self) -> AsyncMediaStorage:
        return self._agno

    @property
    def prefix(self) -> str:
        return self._settings.prefix

    def _client(self) -> Any:
        options: dict[str, Any] = {"config": BotoConfig(signature_version="s3v4")}
        if self._settings.endpoint_url:
            options["endpoint_url"] = self._settings.endpoint_url
        return self._session.client("s3", **options)

    async def put(self, file: BinaryIO, key: str, mime_type: str, name: str) -> None:
        file.seek(0)
        transfer = TransferConfig(
            multipart_threshold=_S3_PART_BYTES,
            multipart_chunksize=_S3_PART_BYTES,
            max_concurrency=2,
            max_io_queue=2,
        )
        extra = {"ContentType": mime_type, "Metadata": {"original-filename": quote(name)}}
        async with self._client() as client:
            await client.upload_fileobj(
                _AsyncReader(file), self._settings.bucket, key, ExtraArgs=extra, Config=transfer
            )

    async def chunks(self, key: str) -> AsyncIterator[bytes]:
        async with self._client() as client:
            try:
                response = await client.get_object(Bucket=self._settings.bucket, Key=key)
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                    raise FileNotFoundError(key) from None
                raise
            body = response["Body"]
            while chunk := await body.read(CHUNK_BYTES):
                yield chunk

    async def delete(self, keys: Sequence[str]) -> None:
        await self._agno.delete_many(list(keys))

    async def prepare(self) -> None:
        """Make the bucket when it does not exist (a new MinIO, the tests' server); an existing one is kept."""
        async with self._client() as client:
            try:
                await client.head_bucket(Bucket=self._settings.bucket)
            except ClientError:
                await client.create_bucket(Bucket=self._settings.bucket)


class _AsyncReader:
    """The spooled file for aioboto3's upload, read off the event loop."""

    def __init__(self, file: BinaryIO) -> None:
        self._file = file

    async def read(self, size: int = -1) -> bytes:
        return await asyncio.to_thread(self._file.read, size)

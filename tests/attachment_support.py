"""Uploading attachments as a frontend does (the GraphQL multipart request spec, over HTTP), and sample files."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path
from typing import Any

import httpx

from tests.client import bearer
from tests.conftest import RunningServer

UPLOAD = """
mutation Upload($input: UploadAttachmentInput!) {
  uploadAttachment(input: $input) {
    attachment { id name mimeType byteSize kind width height url createdAt }
  }
}
"""
ATTACHMENT = "query Attachment($id: ID!) { attachment(id: $id) { id name mimeType byteSize kind width height url } }"
HISTORY = """
query History($id: ID!) {
  session(id: $id) {
    messages(first: 20) { nodes { id role content attachments { id name mimeType byteSize kind width height url } } }
  }
}
"""
RUN_WITH = """
subscription Run($input: RunAgentInput!) {
  runAgent(input: $input) {
    __typename runId sessionId index
    ... on RunCompleted { content }
    ... on RunFailed { message code }
  }
}
"""
# An MP3 as its first bytes read: an ID3v2 header, then an MPEG-1 layer III frame header.
MP3 = b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"\xff\xfb\x90\x64" + bytes(413)


def png(width: int, height: int) -> bytes:
    """A real PNG of the given size (black pixels)."""
    rows = b"".join(b"\x00" + b"\x00\x00\x00" * width for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def multipart_upload(name: str, content: bytes, content_type: str | None, label: str | None = None) -> dict[str, Any]:
    """The fields of an uploadAttachment request: operations, map and one file (what apollo-upload-client sends)."""
    operations = {"query": UPLOAD, "variables": {"input": {"file": None, "name": label}}}
    file = (name, content, content_type) if content_type is not None else (name, content)
    return {
        "data": {"operations": json.dumps(operations), "map": json.dumps({"0": ["variables.input.file"]})},
        "files": {"0": file},
    }


async def upload_response(
    server: RunningServer,
    token: str | None,
    name: str,
    content: bytes,
    content_type: str | None = "application/octet-stream",
    label: str | None = None,
) -> httpx.Response:
    headers = bearer(token) if token else {}
    async with httpx.AsyncClient(timeout=60) as client:
        return await client.post(
            server.http_url, headers=headers, **multipart_upload(name, content, content_type, label)
        )


async def upload(
    server: RunningServer, token: str, name: str, content: bytes, content_type: str | None = None
) -> dict[str, Any]:
    """Upload a file that must be accepted: its Attachment."""
    response = await upload_response(server, token, name, content, content_type or "application/octet-stream")
    body = response.json()
    assert response.status_code == 200 and "errors" not in body, body
    return dict(body["data"]["uploadAttachment"]["attachment"])


async def upload_errors(
    server: RunningServer, token: str, name: str, content: bytes, content_type: str | None = None
) -> list[dict[str, Any]]:
    """Upload a file that must be refused: the errors."""
    response = await upload_response(server, token, name, content, content_type or "application/octet-stream")
    body = response.json()
    assert body.get("errors") and not (body.get("data") or {}).get("uploadAttachment"), body
    return list(body["errors"])


async def download(server: RunningServer, url: str) -> httpx.Response:
    """GET a link as an <img> tag would: no header."""
    async with httpx.AsyncClient(timeout=60) as client:
        return await client.get(server.base_url + url if url.startswith("/") else url)


def stored_files(server: RunningServer) -> list[Path]:
    """The attachment bytes in the server's media folder (Agno's local storage), without their sidecars."""
    folder = server.settings.media_path
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.endswith(".meta.json"))

"""`GET /attachments/<id>/<name>?expires=..&signature=..`: an attachment's bytes for a signed link, streamed from the
media storage; 404 for a link that is wrong or expired."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse

from agno_graphql.services.attachments import AttachmentService

# Shown in the browser; everything else (HTML and SVG included) is saved, never rendered on our origin.
_INLINE_PREFIXES = ("image/", "audio/", "video/")
_INLINE_TYPES = {"application/pdf"}


def attachment_download(attachments: AttachmentService) -> Callable[[Request], Awaitable[Response]]:
    async def download(request: Request) -> Response:
        found = await attachments.download(
            request.path_params["attachment_id"],
            request.query_params.get("expires", ""),
            request.query_params.get("signature", ""),
        )
        if found is None:
            return _not_found()
        record, chunks = found
        try:
            first = await anext(chunks)
        except (FileNotFoundError, StopAsyncIteration):
            return _not_found()
        inline = record.mime_type.startswith(_INLINE_PREFIXES) or record.mime_type in _INLINE_TYPES
        disposition = "inline" if inline else "attachment"
        headers = {
            "Content-Disposition": f"{disposition}; filename*=UTF-8''{quote(record.name, safe='')}",
            "Content-Length": str(record.byte_size),
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "sandbox",
            # The link itself is the credential: private, and only as long as a link lives.
            "Cache-Control": "private, max-age=300",
        }
        return StreamingResponse(_then(first, chunks), media_type=record.mime_type, headers=headers)

    return download


async def _then(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    yield first
    async for chunk in rest:
        yield chunk


def _not_found() -> Response:
    return PlainTextResponse("Not found.\n", status_code=404)

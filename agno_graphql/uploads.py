"""Multipart uploads (the GraphQL multipart request spec) at the door: authenticated from the headers before the
body is read, and held to the attachment size limit.

Strawberry leaves multipart off by default because a cross-site form could post one with the browser's cookies
(CVE-2024-47082). Here no cookie authenticates anything: every request needs an `Authorization: Bearer` header,
which a cross-site form cannot add, so a forged upload is refused before its body is read.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from agno_graphql.auth import TokenVerifier
from agno_graphql.errors import AppError

MULTIPART = "multipart/form-data"
# Room for the operations and map fields beside the file.
MULTIPART_OVERHEAD_BYTES = 64 * 1024


def is_multipart(scope: Scope) -> bool:
    if scope["type"] != "http" or scope.get("method") != "POST":
        return False
    return Headers(scope=scope).get("content-type", "").lower().startswith(MULTIPART)


class UploadGate:
    """401 for a multipart request without a valid token, before a byte of its body is read."""

    def __init__(self, app: ASGIApp, verifier: TokenVerifier) -> None:
        self.app = app
        self.verifier = verifier

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if is_multipart(scope):
            try:
                self.verifier.verify_header(Headers(scope=scope).get("authorization"))
            except AppError as error:
                body = {"errors": [{"message": error.message, "extensions": {"code": error.code}}]}
                await JSONResponse(body, status_code=401)(scope, receive, send)
                return
        await self.app(scope, receive, send)

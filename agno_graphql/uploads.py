"""Multipart uploads (the GraphQL multipart request spec) at the door: authenticated from the headers before the
body is read, and held to the attachment size limit.

Strawberry leaves multipart off by default because a cross-site form could post one with the browser's cookies
(CVE-2024-47082). Here no cookie authenticates anything: every request needs an `Authorization: Bearer` header,
which a cross-site form cannot add, so a forged upload is refused before its body is read.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cross_web import HTTPException
from starlette.datastructures import FormData, Headers, UploadFile
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from agno_graphql.auth import TokenVerifier
from agno_graphql.errors import AppError

MULTIPART = "multipart/form-data"
# Room for the operations and map fields beside the file.
MULTIPART_OVERHEAD_BYTES = 64 * 1024


MISSING_FIELDS = (
    "A multipart request needs the operations and map fields of the GraphQL multipart request spec "
    "(https://github.com/jaydenseric/graphql-multipart-request-spec) beside its file."
)
BAD_MAP = 'The map field must be a JSON object naming the variables each file fills: {"0": ["variables.file"]}.'


def multipart_operation(form: FormData, parse_json: Callable[[str], Any]) -> dict[str, Any]:
    """The operation of a GraphQL multipart request with its file put where the map says; 400 for what the spec
    does not allow: a missing field, a batch, more than one file, a file the map leaves out or a map path that is
    not a null variable of the operation."""
    files = {name: value for name, value in form.multi_items() if isinstance(value, UploadFile)}
    if len(files) > 1:
        raise HTTPException(400, "A request may carry one file.")
    operations_text, map_text = form.get("operations"), form.get("map")
    if not isinstance(operations_text, str) or not isinstance(map_text, str):
        raise HTTPException(400, MISSING_FIELDS)
    operation = parse_json(operations_text)
    if not isinstance(operation, dict):
        raise HTTPException(400, "The operations field must hold one operation, a JSON object (no batches).")
    file_map = parse_json(map_text)
    if not isinstance(file_map, dict) or not all(_is_paths(paths) for paths in file_map.values()):
        raise HTTPException(400, BAD_MAP)
    if set(file_map) != set(files):
        raise HTTPException(400, "Each file of the request must be named in map, and each name in map must be a file.")
    for name, paths in file_map.items():
        for path in paths:
            _put(operation, path, files[name])
    return operation


def _is_paths(paths: Any) -> bool:
    return isinstance(paths, list) and bool(paths) and all(isinstance(path, str) for path in paths)


_MISSING = object()


def _child(container: Any, key: str) -> Any:
    if isinstance(container, dict):
        return container.get(key, _MISSING)
    if isinstance(container, list) and key.isascii() and key.isdigit() and int(key) < len(container):
        return container[int(key)]
    return _MISSING


def _put(operation: dict[str, Any], path: str, file: UploadFile) -> None:
    """Put the file at a map path ("variables.file", "variables.files.0"), where the operation holds null."""
    *keys, last = path.split(".")
    parent: Any = operation
    for key in keys:
        parent = _child(parent, key)
    if not keys or keys[0] != "variables" or _child(parent, last) is not None:
        raise HTTPException(400, f"The map path {path!r} is not a null variable of the operation.")
    if isinstance(parent, list):
        parent[int(last)] = file
    else:
        parent[last] = file


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

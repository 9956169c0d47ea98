"""Hostile input at the transport: HTTP bodies and websocket frames that Strawberry would let through to a crash.

HTTP: a body that is not UTF-8 JSON, or JSON that is not an object (or a list, which Strawberry refuses as a
batch), is a 400; every 4xx Strawberry raises becomes a JSON GraphQL error with a code, not plain text.

Websockets: a frame over the body limit closes the socket with 1009; a message that is not an object of the
protocol's shape closes it with 4400 (Strawberry crashed on some: a list, a non-string id, a string payload).
Once acknowledged, a socket lives no longer than its token: when the token expires, or its user is denied,
the socket is closed with 4403; runs it started go on. A legacy graphql-ws socket that never sends
connection_init is closed with 4408 after the same timeout as graphql-transport-ws.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass
from json import JSONDecodeError
from typing import Any

from cross_web import HTTPException
from starlette.responses import JSONResponse, Response
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState
from strawberry.asgi import ASGIWebSocketAdapter
from strawberry.http.exceptions import NonJsonMessageReceived, NonTextMessageReceived
from strawberry.types.graphql import OperationType

from agno_graphql.auth import TokenVerifier, Viewer
from agno_graphql.compat.strawberry_parts import UNSUPPORTED_CONTENT_TYPE, refused_operation_over
from agno_graphql.error_policy import BAD_REQUEST

HTTP_ERROR_CODES = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 413: "PAYLOAD_TOO_LARGE"}
CLOSE_MESSAGE_TOO_BIG = 1009
CLOSE_BAD_MESSAGE = 4400
CLOSE_FORBIDDEN = 4403
CLOSE_INIT_TIMEOUT = 4408
TOO_DEEP = "The JSON is nested too deeply."
SUBSCRIPTIONS_NEED = (
    "Subscriptions need a websocket (graphql-transport-ws), or Accept: text/event-stream or multipart/mixed."
)
_OPERATION_MESSAGES = {"subscribe", "start"}
_ID_MESSAGES = {"subscribe", "start", "complete", "stop"}


# --- HTTP ---


def parse_json_body(data: str | bytes) -> object:
    """A request body as JSON: 400 unless it is UTF-8 JSON holding an object (or a list: a batch)."""
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
    except UnicodeDecodeError:
        raise HTTPException(400, "The request body must be UTF-8 encoded JSON.") from None
    try:
        parsed = json.loads(text)
    except JSONDecodeError:
        raise HTTPException(400, "Unable to parse request body as JSON") from None
    except RecursionError:
        raise HTTPException(400, TOO_DEEP) from None
    if not isinstance(parsed, dict | list):
        raise HTTPException(400, 'The request body must be a JSON object: {"query": "...", "variables": {...}}.')
    return parsed


def http_error_response(error: HTTPException, method: str) -> Response:
    """A refused HTTP request as a GraphQL error with a code, keeping its status."""
    message = error.reason
    refused = refused_operation_over(message, method)
    if message == UNSUPPORTED_CONTENT_TYPE:
        message = f"{message}: POST application/json (or GET with query parameters; multipart/form-data for a file)."
    elif refused == OperationType.MUTATION:
        message = "Mutations must be sent with POST."
    elif refused == OperationType.SUBSCRIPTION:
        message = SUBSCRIPTIONS_NEED
    code = HTTP_ERROR_CODES.get(error.status_code, BAD_REQUEST)
    body = {"errors": [{"message": message, "extensions": {"code": code}}]}
    return JSONResponse(body, status_code=error.status_code)


# --- websockets ---


def message_problem(message: object) -> str | None:
    """What is wrong with the shape of a graphql-transport-ws or graphql-ws message, or None."""
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        return "A message must be a JSON object with a string `type`."
    kind = message["type"]
    if kind in _ID_MESSAGES and (not isinstance(message.get("id"), str) or not message["id"]):
        return f"`{kind}` needs a non-empty string `id`."
    if kind in _OPERATION_MESSAGES:
        payload = message.get("payload")
        if not isinstance(payload, dict) or not isinstance(payload.get("query"), str | None):
            return f"`{kind}` needs a `payload` object with a string `query`."
        if payload.get("query") is None and "persistedQuery" not in (payload.get("extensions") or {}):
            return f"`{kind}` needs a `payload` object with a string `query` (or a persisted query's hash)."
        if not isinstance(payload.get("operationName"), str | None):
            return "`operationName` must be a string or null."
        for key in ("variables", "extensions"):
            if not isinstance(payload.get(key), dict | None):
                return f"`{key}` must be an object or null."
    return None


@dataclass(frozen=True, slots=True)
class SocketLimits:
    """The largest frame a socket may send, and how long it has to send connection_init."""

    max_bytes: int
    init_timeout_seconds: float


def remember_viewer(websocket: WebSocket, viewer: Viewer) -> None:
    """Tell the socket's guard whom it was acknowledged for (from on_ws_connect)."""
    websocket.state.viewer = viewer


class GuardedWebSocketAdapter(ASGIWebSocketAdapter):
    """Strawberry's websocket adapter, with the frame limit, message shapes, token lifetime and init timeout."""

    def __init__(self, view: Any, request: WebSocket, response: WebSocket) -> None:
        super().__init__(view, request, response)
        # Strawberry builds the adapter from the view alone: the view carries what the guard needs.
        limits: SocketLimits = view.socket_limits
        self.verifier: TokenVerifier = view.services.verifier
        self.max_bytes = limits.max_bytes
        self.init_deadline = time.monotonic() + limits.init_timeout_seconds

    def _viewer(self) -> Viewer | None:
        viewer = getattr(self.ws.state, "viewer", None)
        return viewer if isinstance(viewer, Viewer) else None

    def _close_reason(self) -> tuple[int, str] | None:
        """Why the socket must be closed now, or None."""
        viewer = self._viewer()
        if viewer is None:
            if time.monotonic() >= self.init_deadline:
                return CLOSE_INIT_TIMEOUT, "Connection initialisation timeout"
            return None
        reason = self.verifier.refusal(viewer)
        return (CLOSE_FORBIDDEN, reason.rstrip(".")) if reason else None

    def _seconds_to_recheck(self) -> float | None:
        viewer = self._viewer()
        if viewer is None:
            return max(0.0, self.init_deadline - time.monotonic())
        return self.verifier.seconds_to_recheck(viewer)

    async def _receive_text(self) -> str | None:
        """The next text frame; None when the socket had to be closed (token expired, user denied, no init)."""
        while True:
            if reason := self._close_reason():
                await self.close(*reason)
                return None
            try:
                async with asyncio.timeout(self._seconds_to_recheck()):
                    return await self.ws.receive_text()
            except TimeoutError:
                continue

    def _too_big(self, text: str) -> bool:
        # A character is at most 4 bytes of UTF-8: most frames are measured without encoding them.
        return len(text) > self.max_bytes or (len(text) * 4 > self.max_bytes and len(text.encode()) > self.max_bytes)

    async def iter_json(self, *, ignore_parsing_errors: bool = False) -> AsyncGenerator[object, None]:
        try:
            while self.ws.application_state != WebSocketState.DISCONNECTED:
                text = await self._receive_text()
                if text is None:
                    return
                if self._too_big(text):
                    await self.close(CLOSE_MESSAGE_TOO_BIG, "Message too big")
                    return
                try:
                    message = self.view.decode_json(text)
                except JSONDecodeError:
                    if ignore_parsing_errors:
                        continue
                    raise NonJsonMessageReceived from None
                except RecursionError:
                    await self.close(CLOSE_BAD_MESSAGE, TOO_DEEP)
                    return
                if problem := message_problem(message):
                    await self.close(CLOSE_BAD_MESSAGE, problem)
                    return
                yield message
        except KeyError:
            raise NonTextMessageReceived from None
        except WebSocketDisconnect:
            pass

    async def send_json(self, message: Mapping[str, object]) -> None:
        # After a close sent by the guard, operations still winding down have no one to tell.
        if self.ws.application_state == WebSocketState.DISCONNECTED:
            return
        await super().send_json(message)

    async def close(self, code: int, reason: str) -> None:
        if self.ws.application_state == WebSocketState.DISCONNECTED:
            return
        await super().close(code, reason)

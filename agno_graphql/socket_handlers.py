"""Strawberry's websocket protocol handlers, each socket counted for `/metrics` while it is open, and a client that
leaves mid-send not taken for a server error."""

from __future__ import annotations

import logging
from typing import Any, cast

from cross_web import HTTPException
from graphql import GraphQLFormattedError
from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import BaseGraphQLTransportWSHandler
from strawberry.subscriptions.protocols.graphql_transport_ws.types import ErrorMessage as TransportErrorMessage
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler
from strawberry.subscriptions.protocols.graphql_ws.types import ErrorMessage as LegacyErrorMessage

from agno_graphql.diagnostics import ConnectionTracker
from agno_graphql.error_policy import BAD_REQUEST
from agno_graphql.persisted_queries import NOT_FOUND_MESSAGE, PERSISTED_QUERY_NOT_FOUND, PersistedQueryNotFound
from agno_graphql.trusted_documents import PERSISTED_QUERY_NOT_ALLOWED, DocumentNotAllowed

log = logging.getLogger(__name__)


def _tracker(handler: BaseGraphQLTransportWSHandler[Any, Any] | BaseGraphQLWSHandler[Any, Any]) -> ConnectionTracker:
    tracker = getattr(handler.view, "connections", None)
    assert isinstance(tracker, ConnectionTracker), "the GraphQL view has no ConnectionTracker in `connections`"
    return tracker


async def _refusal(handler: Any, payload: dict[str, Any]) -> GraphQLFormattedError | None:
    """Put the document the operation runs into its payload (documents.py); the error to send instead, if any."""
    try:
        payload["query"] = await handler.view.services.documents.resolve(
            payload.get("query"), payload.get("extensions"), may_register=lambda: handler.connection_acknowledged
        )
    except DocumentNotAllowed:
        return {"message": DocumentNotAllowed.message, "extensions": {"code": PERSISTED_QUERY_NOT_ALLOWED}}
    except PersistedQueryNotFound:
        return {"message": NOT_FOUND_MESSAGE, "extensions": {"code": PERSISTED_QUERY_NOT_FOUND}}
    except HTTPException as error:
        return {"message": error.reason, "extensions": {"code": BAD_REQUEST}}
    return None


class _Counted:
    """A protocol handler counted from the moment the socket is accepted until its operations are cleaned up."""

    async def handle(self) -> None:
        handler: Any = self
        with _tracker(handler).open(handler):
            await cast(Any, super()).handle()  # the protocol handler this is mixed into


class TransportWSHandler(_Counted, BaseGraphQLTransportWSHandler[Any, Any]):
    """graphql-transport-ws, counted."""

    async def handle_subscribe(self, message: Any) -> None:
        if self.connection_acknowledged and (error := await _refusal(self, message["payload"])) is not None:
            await self.send_message(TransportErrorMessage(id=message["id"], type="error", payload=[error]))
            return
        await super().handle_subscribe(message)

    async def handle_task_exception(self, error: Exception) -> None:
        # A client that leaves while its subscription is being sent to is not a server error.
        if isinstance(error, WebSocketDisconnected):
            log.debug("a client left while its subscription was sending: %s", error)
            return
        await super().handle_task_exception(error)


class LegacyWSHandler(_Counted, BaseGraphQLWSHandler[Any, Any]):
    """Legacy graphql-ws, counted the same way."""

    async def handle_start(self, message: Any) -> None:
        if self.connection_acknowledged and (error := await _refusal(self, message["payload"])) is not None:
            await self.send_message(LegacyErrorMessage(id=message["id"], type="error", payload=error))
            return
        await super().handle_start(message)

"""Strawberry's websocket protocol handlers, each socket counted for `/metrics` while it is open, and a client that
leaves mid-send not taken for a server error."""

from __future__ import annotations

import logging
from typing import Any

from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import BaseGraphQLTransportWSHandler
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler

from agno_graphql.diagnostics import ConnectionTracker

log = logging.getLogger(__name__)


def _tracker(handler: BaseGraphQLTransportWSHandler[Any, Any] | BaseGraphQLWSHandler[Any, Any]) -> ConnectionTracker:
    tracker = getattr(handler.view, "connections", None)
    assert isinstance(tracker, ConnectionTracker), "the GraphQL view has no ConnectionTracker in `connections`"
    return tracker


class TransportWSHandler(BaseGraphQLTransportWSHandler[Any, Any]):
    """graphql-transport-ws, counted from the moment the socket is accepted until its operations are cleaned up."""

    async def handle(self) -> None:
        with _tracker(self).open(self):
            await super().handle()

    async def handle_task_exception(self, error: Exception) -> None:
        # A client that leaves while its subscription is being sent to is not a server error.
        if isinstance(error, WebSocketDisconnected):
            log.debug("a client left while its subscription was sending: %s", error)
            return
        await super().handle_task_exception(error)


class LegacyWSHandler(BaseGraphQLWSHandler[Any, Any]):
    """Legacy graphql-ws, counted the same way."""

    async def handle(self) -> None:
        with _tracker(self).open(self):
            await super().handle()

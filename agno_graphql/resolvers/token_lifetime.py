"""A subscription over HTTP (SSE, multipart) lasts no longer than its token, as a websocket does.

A websocket is closed by its guard (`agno_graphql.guards`) when the token expires or the user is denied.
An HTTP stream has no such guard: its subscription ends instead, with UNAUTHENTICATED. What the stream
followed is not stopped by that (a run goes on, unless it was started with onDisconnect: CANCEL).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any, TypeVar

from starlette.websockets import WebSocket

from agno_graphql.errors import Unauthenticated

T = TypeVar("T")


async def while_token_holds(context: Any, events: AsyncIterator[T]) -> AsyncGenerator[T, None]:
    """`events` until they end, or until the viewer's token is refused (UNAUTHENTICATED)."""
    verifier, viewer = context.services.verifier, context.viewer
    if isinstance(context.request, WebSocket) or verifier.seconds_to_recheck(viewer) is None:
        async for event in events:
            yield event
        return
    # The next event is awaited in its own task, so that waiting can be interrupted to look at the token
    # without cancelling (and so ending) the stream.
    pending: asyncio.Task[T] | None = None
    try:
        while True:
            if reason := verifier.refusal(viewer):
                raise Unauthenticated(reason)
            if pending is None:
                pending = asyncio.ensure_future(anext(events))
            done, _ = await asyncio.wait({pending}, timeout=verifier.seconds_to_recheck(viewer))
            if not done:
                continue
            finished, pending = pending, None
            try:
                event = finished.result()
            except StopAsyncIteration:
                return
            yield event
    finally:
        if pending is not None:
            pending.cancel()
            await asyncio.wait({pending})
        close = getattr(events, "aclose", None)
        if close is not None:
            await close()

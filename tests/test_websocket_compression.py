"""Websocket compression (permessage-deflate) is off unless switched on: deltas are tens of bytes, and each
compressed connection keeps zlib state for as long as it is open."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.conftest import RunningServer, make_token, serving_with
from tests.matrix_support import acknowledged_ws, subscribe_run
from tests.run_support import Subscription, run_input


@pytest.fixture(scope="module")
def compressing(
    new_database_url: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    with serving_with(new_database_url, tmp_path_factory, "compressing", ws_compression=True) as running:
        yield running


async def _negotiated_and_answer(server: RunningServer, user_id: str) -> tuple[str | None, str]:
    """The extensions the server accepted for a client that offers permessage-deflate, and a run's answer."""
    async with acknowledged_ws(server, make_token(user_id)) as ws:
        extensions = ws.response.headers.get("Sec-WebSocket-Extensions") if ws.response else None
        await subscribe_run(ws, "1", run_input(None, "compress me"))
        events = await Subscription(ws, "1").events("runAgent")
    return extensions, events[-1]["content"]


async def test_websockets_are_not_compressed_by_default(server: RunningServer, user_id: str) -> None:
    extensions, answer = await _negotiated_and_answer(server, user_id)
    assert extensions is None
    assert answer == "You said: compress me"


async def test_websockets_are_compressed_when_switched_on(compressing: RunningServer, user_id: str) -> None:
    extensions, answer = await _negotiated_and_answer(compressing, user_id)
    assert extensions is not None and "permessage-deflate" in extensions
    assert answer == "You said: compress me"

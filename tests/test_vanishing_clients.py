"""Clients vanish: 200 websocket clients drop their sockets at random moments while their runs stream.

Each client is a raw graphql-transport-ws connection (`websockets`) that leaves at a moment drawn from a
seeded random generator: before the ack, right after subscribing, in the middle of the stream (closing
politely or cutting the TCP connection), or in the middle of a run started with onDisconnect: CANCEL.
Afterwards the server, counted through /metrics, is back where it started (tasks, websockets, operations,
runs, pool connections; memory near), and every run is stored once with a final status in the session
its client started, with its user's message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text
from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

from bench.stats import parse_prometheus_text
from tests.client import execute
from tests.conftest import RunningServer, make_token, serving_with
from tests.matrix_support import connection_init, receive, subscribe_run
from tests.run_support import wait_for_status

CLIENTS = 200
CLIENTS_PER_USER = 4  # under the default cap of 5 runs per user: no client is refused for its user's other runs
SEED = 20261125
WORD_DELAY_MS = 20  # the demo model restates ~50 words: a run lasts about 1 s
FILLER = " ".join(f"w{i}" for i in range(48))
# A client that cancels its run as it leaves asks for a reply ten times as long (about 10 s), so the run is still
# going when the departure reaches the server even on a loaded machine, where 200 clients' event loops lag.
CANCELLED_FILLER = " ".join([FILLER] * 10)
FINAL_STATUSES = {"COMPLETED", "CANCELLED", "ERROR"}
MEMORY_SLACK_BYTES = 50 * 1024 * 1024  # a leak check: 200 leaked runs or sockets with their buffers would pass it
SETTLE_ATTEMPTS = 300  # x 0.1 s

# Figures that must come back exactly to where they were before the clients came.
HELD = (
    "agno_graphql_asyncio_tasks",
    "agno_graphql_websockets_open",
    "agno_graphql_subscriptions_active",
    "agno_graphql_local_runs",
    "agno_graphql_db_pool_checked_out",
)

SESSION_RUNS = """
query Sessions($first: Int) {
  sessions(first: $first) {
    nodes {
      id
      runs(first: 10) { nodes { id status input } }
      messages(first: 10) { nodes { role content runId } }
    }
  }
}
"""


@dataclass
class Client:
    """One vanishing client: how it leaves, and what it saw before it did."""

    number: int
    user_id: str
    departure: str
    events_before_leaving: int
    pause_before_leaving: float
    message: str
    run_id: str | None = None
    session_id: str | None = None
    seen: list[dict[str, Any]] = field(default_factory=list)


DEPARTURES = ("before_init", "before_ack", "after_subscribe", "mid_stream", "cut_mid_stream", "cancel_mid_stream")


def clients(users: list[str]) -> list[Client]:
    rng = random.Random(SEED)
    crowd = []
    for n in range(CLIENTS):
        departure = rng.choice(DEPARTURES)
        filler = CANCELLED_FILLER if departure == "cancel_mid_stream" else FILLER
        crowd.append(
            Client(
                number=n,
                user_id=users[n // CLIENTS_PER_USER],
                departure=departure,
                events_before_leaving=rng.randint(1, 6),
                pause_before_leaving=rng.uniform(0, 0.2),
                message=f"client {n} {filler}",
            )
        )
    return crowd


async def metrics(server: RunningServer) -> dict[str, float]:
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.get(f"{server.base_url}/metrics")
    assert response.status_code == 200, response.text
    return parse_prometheus_text(response.text)


async def vanish(server: RunningServer, client: Client) -> None:
    """Connect, maybe start a run, and leave at the client's moment."""
    await asyncio.sleep(client.pause_before_leaving)
    ws = await connect(server.ws_url, subprotocols=[Subprotocol("graphql-transport-ws")], open_timeout=30)
    try:
        if client.departure == "before_init":
            return
        await ws.send(connection_init(make_token(client.user_id)))
        if client.departure == "before_ack":
            return
        assert (await receive(ws))["type"] == "connection_ack"
        policy = "CANCEL" if client.departure == "cancel_mid_stream" else "CONTINUE"
        variables = {"input": {"agentId": "assistant", "message": client.message, "onDisconnect": policy}}
        await subscribe_run(ws, "1", variables)
        if client.departure == "after_subscribe":
            return
        while len(client.seen) < client.events_before_leaving:
            message = await receive(ws)
            assert message["type"] == "next" and not message["payload"].get("errors"), message
            client.seen.append(message["payload"]["data"]["runAgent"])
        client.run_id, client.session_id = client.seen[0]["runId"], client.seen[0]["sessionId"]
        await asyncio.sleep(client.pause_before_leaving)
    finally:
        if client.departure == "cut_mid_stream":
            ws.transport.abort()  # no close frame: the TCP connection just ends
        with contextlib.suppress(Exception):
            await asyncio.wait_for(ws.close(), timeout=5)


async def peaks(server: RunningServer) -> dict[str, float]:
    """The highest figures read until cancelled."""
    highest: dict[str, float] = {}
    try:
        while True:
            for name, value in (await metrics(server)).items():
                highest[name] = max(value, highest.get(name, value))
            await asyncio.sleep(0.05)
    except asyncio.CancelledError:
        return highest


async def settled(server: RunningServer, baseline: dict[str, float]) -> dict[str, float]:
    """The figures once every held one is back at its baseline, or the last ones read when time ran out."""
    figures = await metrics(server)
    for _ in range(SETTLE_ATTEMPTS):
        if all(figures[name] <= baseline[name] for name in HELD):
            break
        await asyncio.sleep(0.1)
        figures = await metrics(server)
    return figures


def stored_runs(database_url: str) -> list[tuple[str, str, str, str]]:
    """(run_id, session_id, user_id, status) of every row in Agno's runs table."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT run_id, session_id, user_id, status FROM agno_runs")).all()
    finally:
        engine.dispose()
    return [(str(a), str(b), str(c), str(d)) for a, b, c, d in rows]


@pytest.fixture
def metered_server(
    new_database_url: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    with serving_with(
        new_database_url, tmp_path_factory, "vanish", metrics=True, offline_delay_ms=WORD_DELAY_MS
    ) as running:
        yield running


async def test_clients_that_vanish_mid_run_leave_nothing_behind_and_every_run_is_stored_once(
    metered_server: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    server = metered_server
    caplog.set_level(logging.ERROR, logger="strawberry")
    users = [f"vanish-{n}" for n in range(CLIENTS // CLIENTS_PER_USER)]
    crowd = clients(users)
    assert set(Counter(c.departure for c in crowd)) == set(DEPARTURES)
    # Warm up what the first run creates lazily (tables, pool connections, imports), then take the baseline.
    warm_up = Client(-1, "vanish-warm-up", "mid_stream", 1, 0, f"warm up {FILLER}")
    await vanish(server, warm_up)
    assert warm_up.run_id is not None
    await wait_for_status(server, make_token(warm_up.user_id), warm_up.run_id, FINAL_STATUSES)
    baseline = await settled(server, await metrics(server))

    during = asyncio.create_task(peaks(server))
    outcomes = await asyncio.gather(*(vanish(server, client) for client in crowd), return_exceptions=True)
    during.cancel()
    peak = await during

    failures = [(c.number, c.departure, repr(o)) for c, o in zip(crowd, outcomes, strict=True) if o is not None]
    assert not failures, failures[:5]
    # The counters saw the crowd (a counter stuck at zero would pass everything below).
    assert all(peak[name] > baseline[name] for name in HELD if name != "agno_graphql_db_pool_checked_out"), peak
    after = await settled(server, baseline)
    held = {name: (baseline[name], after[name]) for name in HELD}
    assert all(now <= before for before, now in held.values()), held
    assert after["agno_graphql_local_runs"] == after["agno_graphql_websockets_open"] == 0, after
    growth = after["process_resident_memory_bytes"] - baseline["process_resident_memory_bytes"]
    assert growth < MEMORY_SLACK_BYTES, f"resident memory grew by {growth / 2**20:.1f} MiB"

    # Every run stored exactly once, final, none running.
    rows = stored_runs(server.settings.database_url)
    assert all(count == 1 for count in Counter(run_id for run_id, *_ in rows).values())
    assert {status for *_, status in rows} <= FINAL_STATUSES, Counter(status for *_, status in rows)
    stored = {run_id: (session_id, user_id, status) for run_id, session_id, user_id, status in rows}
    for client in crowd:
        if client.run_id is None:
            continue
        assert client.run_id in stored, (client.number, client.departure)
        session_id, user_id, status = stored[client.run_id]
        assert (session_id, user_id) == (client.session_id, client.user_id)
        expected = "CANCELLED" if client.departure == "cancel_mid_stream" else "COMPLETED"
        assert status == expected, (client.number, client.departure, client.events_before_leaving, status)

    # What each user sees: a session per run, holding the message its client sent and the run.
    by_message = {client.message: client for client in crowd}
    stored_by_user = Counter(user_id for _, user_id, _ in stored.values())
    for user_id in users:
        nodes = (await execute(server, make_token(user_id), SESSION_RUNS, {"first": 100}))["sessions"]["nodes"]
        assert len(nodes) == stored_by_user[user_id]
        for session in nodes:
            (run,) = session["runs"]["nodes"]
            asked = [m["content"] for m in session["messages"]["nodes"] if m["role"] == "USER"]
            assert asked == [run["input"]]
            client = by_message[run["input"]]
            assert client.user_id == user_id and client.departure not in {"before_init", "before_ack"}
            if client.run_id is not None:
                assert (run["id"], session["id"]) == (client.run_id, client.session_id)
    streamed = [c for c in crowd if c.departure in {"mid_stream", "cut_mid_stream", "cancel_mid_stream"}]
    assert all(c.run_id for c in streamed) and len(stored) >= len(streamed) + 1
    # Clients leaving are no server errors: nothing logged as one.
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_metrics_are_off_unless_enabled(server: RunningServer) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.get(f"{server.base_url}/metrics")
    assert response.status_code == 404

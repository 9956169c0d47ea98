"""What the server holds, counted from outside: `/metrics` in Prometheus text format (AGNO_GRAPHQL_METRICS=true).

The figures are the ones a leak shows in: asyncio tasks, open websockets and the operations running on them,
runs this process drives, database connections checked out of the pool, resident memory and open file
descriptors. They are read when asked for, nothing is sampled in the background.
"""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import BaseGraphQLTransportWSHandler
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler

from agno_graphql.agents.runner import RunManager
from agno_graphql.db.database import Database

METRICS_PATH = "/metrics"
PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"


class ConnectionTracker:
    """The websocket connections of one GraphQL app that are open now, and the operations running on them."""

    def __init__(self) -> None:
        self._transport_ws: set[BaseGraphQLTransportWSHandler[Any, Any]] = set()
        self._legacy_ws: set[BaseGraphQLWSHandler[Any, Any]] = set()

    @contextmanager
    def open(self, handler: BaseGraphQLTransportWSHandler[Any, Any] | BaseGraphQLWSHandler[Any, Any]) -> Iterator[None]:
        """Count `handler`'s socket while the block runs."""
        sockets: set[Any] = (
            self._transport_ws if isinstance(handler, BaseGraphQLTransportWSHandler) else self._legacy_ws
        )
        sockets.add(handler)
        try:
            yield
        finally:
            sockets.discard(handler)

    @property
    def websockets(self) -> int:
        return len(self._transport_ws) + len(self._legacy_ws)

    @property
    def subscriptions(self) -> int:
        """Operations in flight on the open sockets (subscriptions, and queries sent over a socket)."""
        return sum(len(h.operations) for h in self._transport_ws) + sum(len(h.subscriptions) for h in self._legacy_ws)


def _resident_bytes() -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _open_fds() -> int | None:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return None


def _pool_figures(db: Database) -> tuple[int, int]:
    """(checked out, checked in) of the database pools (the writer's and, on MySQL, the reader's); (0, 0) for pools
    that keep no connections."""
    checked_out = checked_in = 0
    pool = db.engine.pool
    out, idle = getattr(pool, "checkedout", None), getattr(pool, "checkedin", None)
    if out is not None and idle is not None:
        checked_out, checked_in = int(out()), int(idle())
    reader = db.driver_reader
    if reader is not None:
        checked_out, checked_in = checked_out + reader.checked_out, checked_in + reader.checked_in
    return checked_out, checked_in


def metric_values(db: Database, runs: RunManager, connections: ConnectionTracker) -> dict[str, tuple[str, int | None]]:
    """Name -> (help, value) of every figure, read now; None where this platform cannot tell (no /proc)."""
    checked_out, checked_in = _pool_figures(db)
    return {
        "agno_graphql_asyncio_tasks": ("Asyncio tasks alive in the server's event loop.", len(asyncio.all_tasks())),
        "agno_graphql_websockets_open": ("GraphQL websocket connections open.", connections.websockets),
        "agno_graphql_subscriptions_active": (
            "Operations in flight on open websockets (subscriptions mostly).",
            connections.subscriptions,
        ),
        "agno_graphql_local_runs": ("Runs this process is driving.", len(runs.local_runs)),
        "agno_graphql_db_pool_checked_out": ("Database connections checked out of the pool.", checked_out),
        "agno_graphql_db_pool_checked_in": ("Database connections idle in the pool.", checked_in),
        "process_resident_memory_bytes": ("Resident memory size in bytes.", _resident_bytes()),
        "process_open_fds": ("Open file descriptors.", _open_fds()),
    }


def tasks_by_coroutine() -> Counter[str]:
    """How many tasks run each coroutine (by qualified name): where a count of tasks that grew comes from."""
    names: Counter[str] = Counter()
    for task in asyncio.all_tasks():
        coroutine = task.get_coro()
        names[getattr(coroutine, "__qualname__", None) or type(coroutine).__name__] += 1
    return names


def prometheus_text(values: dict[str, tuple[str, int | None]], tasks: Counter[str] | None = None) -> str:
    lines: list[str] = []
    for name, (help_text, value) in values.items():
        if value is None:
            continue
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge", f"{name} {value}"]
    if tasks:
        name = "agno_graphql_asyncio_tasks_by_coroutine"
        lines += [f"# HELP {name} Asyncio tasks alive, by the coroutine they run.", f"# TYPE {name} gauge"]
        for coroutine, count in sorted(tasks.items()):
            label = coroutine.replace("\\", "\\\\").replace('"', '\\"')
            lines.append(f'{name}{{coroutine="{label}"}} {count}')
    return "\n".join(lines) + "\n"


def metrics_endpoint(
    db: Database, runs: RunManager, connections: ConnectionTracker
) -> Callable[[Request], Awaitable[Response]]:
    """The `/metrics` route handler. Unauthenticated, like /healthz: enable it only where scrapers can reach it."""

    async def metrics(request: Request) -> Response:
        text = prometheus_text(metric_values(db, runs, connections), tasks_by_coroutine())
        return PlainTextResponse(text, media_type=PROMETHEUS_TEXT)

    return metrics

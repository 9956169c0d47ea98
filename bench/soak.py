"""The soak: `python -m bench.soak [--minutes 10] [--streams 200] ...` (`make soak`; not part of CI).

Two `agno-graphql serve` instances on a fresh MariaDB database and one Redis share mixed traffic for a while:
~200 concurrent run streams (each worker a user of its own) that sometimes drop their socket mid-run and resume
on the other instance with runEvents(afterIndex), sometimes drop with onDisconnect: CANCEL; session list and
history queries; create, rename, delete mutations. /metrics of both instances is sampled all along.

Then the checks, printed as a table (non-zero exit when one fails): every event stream was gap-free; every
run that was started is stored exactly once with a final status, the one its client saw; every session holds
exactly the messages its client sent, in order; renames and deletes stuck; nothing is held once idle (tasks,
websockets, operations, runs, pool connections as before the load); memory and file descriptors did not grow
from the first third of the load to the last.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pymysql
import redis
from sqlalchemy.engine import make_url
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

from bench.harness import REPO, SECRET, free_port, log, token
from bench.stats import parse_prometheus_text

FINAL_STATUSES = {"COMPLETED", "CANCELLED", "ERROR"}
TERMINAL_STATUS = {"RunCompleted": "COMPLETED", "RunCancelled": "CANCELLED", "RunFailed": "ERROR"}
RETRYABLE = {"SESSION_BUSY", "RATE_LIMITED"}
EVENT_FIELDS = (
    "__typename runId sessionId index ... on RunContentDelta { delta } ... on RunCompleted { content } "
    "... on RunFailed { message code } ... on RunCancelled { reason content }"
)
RUN_AGENT = f"subscription Run($input: RunAgentInput!) {{ runAgent(input: $input) {{ {EVENT_FIELDS} }} }}"
RUN_EVENTS = (
    f"subscription Follow($runId: ID!, $afterIndex: Int) {{ runEvents(runId: $runId, afterIndex: $afterIndex) "
    f"{{ {EVENT_FIELDS} }} }}"
)
SESSIONS = (
    "query Sessions($after: String) { sessions(first: 20, after: $after) { nodes { id name runCount } "
    "pageInfo { hasNextPage endCursor } } }"
)
HISTORY = "query History($id: ID!) { session(id: $id) { messages(last: 50) { nodes { runId role content } } } }"
CREATE = "mutation C($input: CreateSessionInput!) { createSession(input: $input) { session { id name } } }"
RENAME = "mutation R($input: RenameSessionInput!) { renameSession(input: $input) { session { id name } } }"
DELETE = "mutation D($input: DeleteSessionInput!) { deleteSession(input: $input) { deletedSessionId } }"
HELD_WHEN_IDLE = (
    "agno_graphql_asyncio_tasks",
    "agno_graphql_websockets_open",
    "agno_graphql_subscriptions_active",
    "agno_graphql_local_runs",
    "agno_graphql_db_pool_checked_out",
)
MIB = 1024 * 1024


@dataclass(frozen=True)
class SoakConfig:
    database_url: str = "mysql+pymysql://root@127.0.0.1:3306/agql_soak"
    redis_url: str = "redis://127.0.0.1:6379/0"
    minutes: float = 10.0
    streams: int = 200
    query_workers: int = 4
    mutation_workers: int = 4
    words: int = 60  # the demo model restates the message word by word: a run lasts words x word_delay_ms
    word_delay_ms: int = 40
    think_seconds: float = 1.0  # a stream worker's pause between runs (uniform 0..2x)
    sample_seconds: float = 5.0
    # Finished runs' events stay in memory this long (AGNO_GRAPHQL_RUN_EVENTS_RETENTION_SECONDS, 600 by default): kept
    # well under a third of the load, memory reaches its steady state early and growth after that is a leak.
    retention_seconds: float = 60.0
    seed: int = 1
    keep_database: bool = False
    # Allowed drift from the first third of the load to the last (median of the samples of each).
    rss_growth_fraction: float = 0.10
    rss_growth_floor_mib: float = 32.0
    fd_growth_fraction: float = 0.15
    fd_growth_floor: int = 20


@dataclass
class Figures:
    """What the clients did and saw."""

    runs_started: int = 0
    runs_resumed: int = 0
    runs_dropped_with_cancel: int = 0
    sockets_cut: int = 0
    refused_busy_or_limited: int = 0
    queries: int = 0
    mutations: int = 0
    errors: list[str] = field(default_factory=list)
    gaps: list[str] = field(default_factory=list)


@dataclass
class SeenRun:
    run_id: str
    session_id: str
    user_id: str
    message: str
    terminal: str
    content: str
    failure_code: str = ""


class Soak:
    def __init__(self, config: SoakConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self.state_dir = Path(tempfile.mkdtemp(prefix="agql-soak-"))
        stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime())
        base = make_url(config.database_url)
        self.database = f"{base.database or 'agql_soak'}_{stamp}"
        self.url = base.set(drivername="mysql+pymysql", database=self.database)
        self.redis_prefix = f"agql-soak-{stamp}"
        self.servers: list[tuple[subprocess.Popen[bytes], int]] = []
        self.figures = Figures()
        self.runs: dict[str, SeenRun] = {}
        self.session_messages: dict[str, list[str]] = defaultdict(list)
        self.renamed: dict[str, str] = {}
        self.deleted: set[str] = set()
        self.samples: list[dict[str, Any]] = []
        self.deadline = 0.0

    # -- setup -----------------------------------------------------------------------------------

    def _mysql(self, database: str | None = None) -> pymysql.connections.Connection:
        return pymysql.connect(
            host=self.url.host or "127.0.0.1",
            port=self.url.port or 3306,
            user=self.url.username or "root",
            password=self.url.password or "",
            database=database,
            autocommit=True,
        )

    def start(self, instances: int = 2) -> None:
        conn = self._mysql()
        with conn.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE `{self.database}` CHARACTER SET utf8mb4")
        conn.close()
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
            "AGNO_TELEMETRY": "false",
            "AGNO_GRAPHQL_DATABASE_URL": self.url.render_as_string(hide_password=False),
            "AGNO_GRAPHQL_REDIS_URL": self.config.redis_url,
            "AGNO_GRAPHQL_REDIS_PREFIX": self.redis_prefix,
            "AGNO_GRAPHQL_JWT_SECRET": SECRET,
            "AGNO_GRAPHQL_METRICS": "true",
            "AGNO_GRAPHQL_OFFLINE_DELAY_MS": str(self.config.word_delay_ms),
            "AGNO_GRAPHQL_RUN_EVENTS_RETENTION_SECONDS": str(self.config.retention_seconds),
            "AGNO_GRAPHQL_LOG_LEVEL": "warning",
            "AGNO_GRAPHQL_GRAPHIQL": "false",
            "AGNO_GRAPHQL_STATE_DIR": str(self.state_dir / "state"),
        }
        for n in range(instances):
            port = free_port()
            with open(self.state_dir / f"server-{n}.log", "wb") as logfile:
                command = [
                    sys.executable,
                    "-m",
                    "agno_graphql.cli",
                    "serve",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                ]
                process = subprocess.Popen(
                    command, cwd=self.state_dir, env=env, stdout=logfile, stderr=subprocess.STDOUT
                )
            self.servers.append((process, port))
            # One after the other: the first creates the tables.
            self._wait_healthy(n)
        log(
            f"database {self.database}, servers on ports {[port for _, port in self.servers]}, logs in {self.state_dir}"
        )

    def _wait_healthy(self, n: int, timeout: float = 90) -> None:
        process, port = self.servers[n]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"server {n} exited: {(self.state_dir / f'server-{n}.log').read_text()[-3000:]}")
            with contextlib.suppress(OSError), urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                return
            time.sleep(0.1)
        raise RuntimeError(f"server {n} did not answer /healthz in {timeout} s")

    def stop(self) -> None:
        for process, _ in self.servers:
            if process.poll() is None:
                process.terminate()
        for process, _ in self.servers:
            try:
                process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        with contextlib.suppress(Exception):
            client = redis.Redis.from_url(self.config.redis_url)
            keys = list(client.scan_iter(f"{self.redis_prefix}*", count=1000))
            if keys:
                client.delete(*keys)
        if not self.config.keep_database:
            conn = self._mysql()
            with conn.cursor() as cursor:
                cursor.execute(f"DROP DATABASE IF EXISTS `{self.database}`")
            conn.close()

    # -- clients ---------------------------------------------------------------------------------

    def http_url(self, n: int) -> str:
        return f"http://127.0.0.1:{self.servers[n][1]}"

    async def graphql(
        self, http: aiohttp.ClientSession, user: str, query: str, variables: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        n = self.rng.randrange(len(self.servers))
        headers = {"Authorization": f"Bearer {token(user)}"}
        async with http.post(
            f"{self.http_url(n)}/graphql", json={"query": query, "variables": variables or {}}, headers=headers
        ) as response:
            body = await response.json(content_type=None)
        if response.status != 200 or body.get("errors"):
            raise RuntimeError(f"HTTP {response.status}: {json.dumps(body)[:300]}")
        return dict(body["data"])

    async def metrics(self, http: aiohttp.ClientSession, n: int) -> dict[str, float]:
        async with http.get(f"{self.http_url(n)}/metrics") as response:
            return parse_prometheus_text(await response.text())

    async def socket(self, n: int, user: str) -> ClientConnection:
        ws = await connect(
            f"ws://127.0.0.1:{self.servers[n][1]}/graphql",
            subprotocols=[Subprotocol("graphql-transport-ws")],
            open_timeout=30,
            close_timeout=5,
            max_size=None,
        )
        await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {token(user)}"}}))
        ack = await self.receive(ws)
        if ack.get("type") != "connection_ack":
            raise RuntimeError(f"no ack: {ack}")
        return ws

    @staticmethod
    async def receive(ws: ClientConnection) -> dict[str, Any]:
        while True:
            message = json.loads(await asyncio.wait_for(ws.recv(), timeout=60))
            if message.get("type") == "ping":
                await ws.send(json.dumps({"type": "pong"}))
                continue
            return dict(message)

    async def read_events(
        self, ws: ClientConnection, field_name: str, into: list[dict[str, Any]], stop_after: int | None
    ) -> str | None:
        """Events into `into` until the terminal one (its typename), or None after `stop_after` events.
        A refusal raises RuntimeError with the error code first."""
        read = 0
        while stop_after is None or read < stop_after:
            message = await self.receive(ws)
            if message["type"] == "complete":
                return into[-1]["__typename"] if into else "complete"
            errors = message["payload"] if message["type"] == "error" else message["payload"].get("errors")
            if errors:
                code = (errors[0].get("extensions") or {}).get("code", "")
                raise RuntimeError(f"{code} {errors[0].get('message')}")
            event = message["payload"]["data"][field_name]
            into.append(event)
            read += 1
            if event["__typename"] in TERMINAL_STATUS:
                return str(event["__typename"])
        return None

    async def close(self, ws: ClientConnection, cut: bool) -> None:
        if cut:
            self.figures.sockets_cut += 1
            ws.transport.abort()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(ws.close(), timeout=5)

    async def one_run(self, user: str, session_id: str | None, number: int) -> SeenRun | None:
        """Start a run on one instance; maybe leave mid-stream and resume on the other. None when refused."""
        config, rng = self.config, self.rng
        home = rng.randrange(len(self.servers))
        other = (home + 1) % len(self.servers)
        roll = rng.random()
        behaviour = "whole" if roll < 0.6 else "resume" if roll < 0.9 else "cancel"
        message = f"soak {user} run {number} " + " ".join(f"w{i}" for i in range(config.words - 4))
        policy = "CANCEL" if behaviour == "cancel" else "CONTINUE"
        variables = {
            "input": {"agentId": "assistant", "sessionId": session_id, "message": message, "onDisconnect": policy}
        }
        events: list[dict[str, Any]] = []
        ws = await self.socket(home, user)
        terminal: str | None = None
        try:
            await ws.send(
                json.dumps({"id": "1", "type": "subscribe", "payload": {"query": RUN_AGENT, "variables": variables}})
            )
            try:
                terminal = await self.read_events(
                    ws, "runAgent", events, None if behaviour == "whole" else rng.randint(1, 12)
                )
            except RuntimeError as exc:
                if str(exc).split(" ", 1)[0] in RETRYABLE:
                    self.figures.refused_busy_or_limited += 1
                    return None
                raise
        finally:
            await self.close(ws, cut=terminal is None and rng.random() < 0.5)
        run_id, run_session = events[0]["runId"], events[0]["sessionId"]
        self.figures.runs_started += 1
        self.session_messages[run_session].append(message)
        # Known from its first event on: a run whose resume fails still has to be stored.
        seen = SeenRun(run_id=run_id, session_id=run_session, user_id=user, message=message, terminal="", content="")
        self.runs[run_id] = seen
        if terminal is None:
            if behaviour == "cancel":
                self.figures.runs_dropped_with_cancel += 1
            else:
                self.figures.runs_resumed += 1
            await asyncio.sleep(rng.uniform(0, 0.5))
            ws = await self.socket(other, user)
            try:
                variables = {"runId": run_id, "afterIndex": events[-1]["index"]}
                await ws.send(
                    json.dumps(
                        {"id": "1", "type": "subscribe", "payload": {"query": RUN_EVENTS, "variables": variables}}
                    )
                )
                terminal = await self.read_events(ws, "runEvents", events, None)
            finally:
                await self.close(ws, cut=False)
        self.check_stream(run_id, events)
        seen.terminal, seen.content = str(terminal), str(events[-1].get("content") or "")
        seen.failure_code = str(events[-1].get("code") or "")
        return seen

    def check_stream(self, run_id: str, events: list[dict[str, Any]]) -> None:
        indexes = [event["index"] for event in events]
        problems = []
        if indexes != list(range(len(indexes))):
            problems.append(f"indexes {indexes[:5]}..{indexes[-5:]}")
        if events[0]["__typename"] != "RunStarted" or events[-1]["__typename"] not in TERMINAL_STATUS:
            problems.append(f"{events[0]['__typename']} .. {events[-1]['__typename']}")
        if {event["runId"] for event in events} != {run_id}:
            problems.append("events of another run")
        if events[-1]["__typename"] == "RunCompleted":
            streamed = "".join(event.get("delta") or "" for event in events)
            if streamed != events[-1]["content"]:
                problems.append("streamed content differs from the completed content")
        if problems:
            self.figures.gaps.append(f"{run_id}: {'; '.join(problems)}")

    async def stream_worker(self, n: int) -> None:
        user = f"soak-stream-{n}"
        session_id: str | None = None
        number = 0
        await asyncio.sleep(self.rng.uniform(0, self.config.think_seconds * 2))
        while time.monotonic() < self.deadline:
            number += 1
            try:
                seen = await self.one_run(user, session_id if self.rng.random() < 0.7 else None, number)
            except Exception as exc:
                self.figures.errors.append(f"stream {user}: {type(exc).__name__}: {exc}"[:300])
                seen = None
                await asyncio.sleep(1)
            if seen is not None:
                session_id = seen.session_id
            await asyncio.sleep(self.rng.uniform(0, self.config.think_seconds * 2))

    async def query_worker(self, http: aiohttp.ClientSession, n: int) -> None:
        while time.monotonic() < self.deadline:
            user = f"soak-stream-{self.rng.randrange(self.config.streams)}"
            try:
                page = (await self.graphql(http, user, SESSIONS))["sessions"]
                self.figures.queries += 1
                if page["pageInfo"]["hasNextPage"]:
                    await self.graphql(http, user, SESSIONS, {"after": page["pageInfo"]["endCursor"]})
                    self.figures.queries += 1
                if page["nodes"]:
                    session = self.rng.choice(page["nodes"])
                    await self.graphql(http, user, HISTORY, {"id": session["id"]})
                    self.figures.queries += 1
            except Exception as exc:
                self.figures.errors.append(f"query {user}: {exc}"[:300])
            await asyncio.sleep(self.rng.uniform(0.05, 0.3))

    async def mutation_worker(self, http: aiohttp.ClientSession, n: int) -> None:
        user = f"soak-mutations-{n}"
        count = 0
        while time.monotonic() < self.deadline:
            count += 1
            try:
                created = await self.graphql(
                    http, user, CREATE, {"input": {"agentId": "assistant", "name": f"s{count}"}}
                )
                session_id = created["createSession"]["session"]["id"]
                name = f"renamed {n}-{count}"
                await self.graphql(http, user, RENAME, {"input": {"sessionId": session_id, "name": name}})
                self.renamed[session_id] = name
                self.figures.mutations += 2
                if self.rng.random() < 0.5:
                    await self.graphql(http, user, DELETE, {"input": {"sessionId": session_id}})
                    self.deleted.add(session_id)
                    self.figures.mutations += 1
            except Exception as exc:
                self.figures.errors.append(f"mutation {user}: {exc}"[:300])
            await asyncio.sleep(self.rng.uniform(0.1, 0.5))

    async def sampler(self, http: aiohttp.ClientSession, started: float) -> None:
        while time.monotonic() < self.deadline:
            for n in range(len(self.servers)):
                with contextlib.suppress(Exception):
                    figures = await self.metrics(http, n)
                    self.samples.append({"server": n, "t": round(time.monotonic() - started, 1), **figures})
            await asyncio.sleep(self.config.sample_seconds)

    async def idle_figures(
        self, http: aiohttp.ClientSession, baseline: list[dict[str, float]] | None
    ) -> list[dict[str, float]]:
        """Each server's figures once its runs and sockets are gone (up to 2 min) and, given a baseline, what it
        held is back there (up to 30 s more: releasing is quick, a leak never gets there)."""
        result = []
        for n in range(len(self.servers)):
            figures = await self.metrics(http, n)
            idle_since: int | None = None
            for attempt in range(750):  # x 0.2 s
                if figures["agno_graphql_local_runs"] == 0 and figures["agno_graphql_websockets_open"] == 0:
                    idle_since = attempt if idle_since is None else idle_since
                released = baseline is None or all(figures[k] <= baseline[n][k] for k in HELD_WHEN_IDLE)
                if idle_since is not None and (released or attempt - idle_since >= 150):
                    break
                await asyncio.sleep(0.2)
                figures = await self.metrics(http, n)
            result.append(figures)
        return result

    async def drive(self) -> dict[str, Any]:
        config = self.config
        timeout = aiohttp.ClientTimeout(total=60)
        async with aiohttp.ClientSession(
            timeout=timeout, connector=aiohttp.TCPConnector(limit=32, force_close=True)
        ) as http:
            # Warm-up: a run started on each instance, then the idle figures before the load.
            for n in range(len(self.servers)):
                await self.one_run(f"soak-warm-{n}", None, 0)
            await asyncio.sleep(2)
            before = await self.idle_figures(http, None)
            started = time.monotonic()
            self.deadline = started + config.minutes * 60
            log(
                f"load for {config.minutes} min: {config.streams} streams, {config.query_workers} query and "
                f"{config.mutation_workers} mutation workers"
            )
            workers = [self.stream_worker(n) for n in range(config.streams)]
            workers += [self.query_worker(http, n) for n in range(config.query_workers)]
            workers += [self.mutation_worker(http, n) for n in range(config.mutation_workers)]
            workers.append(self.sampler(http, started))
            await asyncio.gather(*workers)
            load_seconds = time.monotonic() - started
            log(f"load over after {load_seconds:.0f} s; waiting for the servers to be idle")
            after = await self.idle_figures(http, before)
        return {"before": before, "after": after, "load_seconds": load_seconds}

    # -- checks ----------------------------------------------------------------------------------

    def database_checks(self) -> list[tuple[str, bool, str]]:
        conn = self._mysql(self.database)
        with conn.cursor() as cursor:
            cursor.execute("SELECT run_id, session_id, user_id, status, run_index, run_data FROM agno_runs")
            rows = cursor.fetchall()
            cursor.execute("SELECT session_id, user_id, session_data FROM agno_sessions")
            sessions = cursor.fetchall()
        conn.close()
        checks: list[tuple[str, bool, str]] = []
        stored: dict[str, tuple[str, str, str, int, dict[str, Any]]] = {}
        duplicates = 0
        for run_id, session_id, user_id, status, run_index, run_data in rows:
            duplicates += run_id in stored
            stored[run_id] = (session_id, user_id, status, int(run_index or 0), json.loads(run_data))
        statuses = Counter(status for _, _, status, _, _ in stored.values())
        missing = [run_id for run_id in self.runs if run_id not in stored]
        unknown = [run_id for run_id, row in stored.items() if run_id not in self.runs and row[1].startswith("soak-")]
        wrong_status = [
            run_id
            for run_id, seen in self.runs.items()
            if run_id in stored and stored[run_id][2] != TERMINAL_STATUS.get(seen.terminal)
        ]
        wrong_content = [
            run_id
            for run_id, seen in self.runs.items()
            if run_id in stored and seen.terminal == "RunCompleted" and stored[run_id][4].get("content") != seen.content
        ]
        checks.append(("every started run stored", not missing, f"{len(self.runs)} started, {len(missing)} missing"))
        checks.append(
            (
                "stored exactly once",
                duplicates == 0 and not unknown,
                f"{duplicates} duplicates, {len(unknown)} runs no client started",
            )
        )
        checks.append(("final status, none running", set(statuses) <= FINAL_STATUSES, dict(statuses).__repr__()))
        pairs = Counter(
            f"{self.runs[r].terminal or 'no terminal'} {self.runs[r].failure_code} stored {stored[r][2]}".replace(
                "  ", " "
            )
            for r in wrong_status
        )
        checks.append(
            (
                "stored status = the client's terminal event",
                not wrong_status,
                f"{len(wrong_status)} differ {dict(pairs)}",
            )
        )
        checks.append(("stored content = the streamed content", not wrong_content, f"{len(wrong_content)} differ"))

        by_session: dict[str, list[tuple[int, list[str]]]] = defaultdict(list)
        for session_id, _, _, run_index, run_data in stored.values():
            asked = [
                str(m.get("content"))
                for m in run_data.get("messages") or []
                if m.get("role") == "user" and not m.get("from_history")
            ]
            by_session[session_id].append((run_index, asked))
        lost = []
        for session_id, sent in self.session_messages.items():
            kept = [text for _, asked in sorted(by_session.get(session_id, [])) for text in asked]
            if kept != sent:
                lost.append(session_id)
        checks.append(
            ("no session lost a message", not lost, f"{len(self.session_messages)} sessions, {len(lost)} differ")
        )
        names = {sid: (json.loads(data) if data else {}).get("session_name") for sid, _, data in sessions}
        kept_wrong = [sid for sid, name in self.renamed.items() if sid not in self.deleted and names.get(sid) != name]
        deleted_present = [sid for sid in self.deleted if sid in names]
        checks.append(
            (
                "renames and deletes stuck",
                not kept_wrong and not deleted_present,
                f"{len(self.renamed)} renamed, {len(self.deleted)} deleted; {len(kept_wrong)} wrong, "
                f"{len(deleted_present)} still there",
            )
        )
        return checks

    def resource_checks(self, drive: dict[str, Any]) -> tuple[list[tuple[str, bool, str]], list[dict[str, Any]]]:
        config = self.config
        checks: list[tuple[str, bool, str]] = []
        table: list[dict[str, Any]] = []
        for n in range(len(self.servers)):
            before, after = drive["before"][n], drive["after"][n]
            held = {k: (before[k], after[k]) for k in HELD_WHEN_IDLE}
            detail = ", ".join(f"{k.removeprefix('agno_graphql_')} {b:g}->{a:g}" for k, (b, a) in held.items())
            more_tasks = {
                key.split('"')[1]: after[key] - before.get(key, 0)
                for key in after
                if key.startswith("agno_graphql_asyncio_tasks_by_coroutine") and after[key] > before.get(key, 0)
            }
            if more_tasks:
                detail += f"; tasks added: {more_tasks}"
            checks.append((f"server {n}: idle again as before the load", all(a <= b for b, a in held.values()), detail))
            samples = [s for s in self.samples if s["server"] == n]
            third = max(1, len(samples) // 3)
            first, last = samples[:third], samples[-third:]

            def median(rows: list[dict[str, Any]], key: str) -> float:
                return float(statistics.median(row[key] for row in rows)) if rows else 0.0

            rss_first, rss_last = (
                median(first, "process_resident_memory_bytes"),
                median(last, "process_resident_memory_bytes"),
            )
            fds_first, fds_last = median(first, "process_open_fds"), median(last, "process_open_fds")
            rss_limit = rss_first + max(rss_first * config.rss_growth_fraction, config.rss_growth_floor_mib * MIB)
            checks.append(
                (
                    f"server {n}: memory did not grow",
                    bool(samples) and rss_last <= rss_limit,
                    f"RSS {rss_first / MIB:.0f} -> {rss_last / MIB:.0f} MiB (limit {rss_limit / MIB:.0f})",
                )
            )
            fds_limit = fds_first + max(fds_first * config.fd_growth_fraction, config.fd_growth_floor)
            checks.append(
                (
                    f"server {n}: file descriptors did not grow",
                    bool(samples) and fds_last <= fds_limit,
                    f"fds {fds_first:.0f} -> {fds_last:.0f} (limit {fds_limit:.0f})",
                )
            )
            table.append(
                {
                    "server": n,
                    "samples": len(samples),
                    "idle_before": before,
                    "idle_after": after,
                    "rss_mib_first_third": round(rss_first / MIB, 1),
                    "rss_mib_last_third": round(rss_last / MIB, 1),
                    "rss_mib_peak": round(
                        max((s["process_resident_memory_bytes"] for s in samples), default=0) / MIB, 1
                    ),
                    "fds_first_third": fds_first,
                    "fds_last_third": fds_last,
                    "fds_peak": max((s["process_open_fds"] for s in samples), default=0),
                    "websockets_peak": max((s["agno_graphql_websockets_open"] for s in samples), default=0),
                    "local_runs_peak": max((s["agno_graphql_local_runs"] for s in samples), default=0),
                    "tasks_peak": max((s["agno_graphql_asyncio_tasks"] for s in samples), default=0),
                }
            )
        return checks, table


def report_text(report: dict[str, Any]) -> str:
    figures = report["figures"]
    lines = [
        f"soak: {report['command']}",
        f"load {report['load_seconds']:.0f} s: {figures['runs_started']} runs started ({figures['runs_resumed']} "
        f"resumed on the other instance, {figures['runs_dropped_with_cancel']} dropped with CANCEL, "
        f"{figures['sockets_cut']} sockets cut), {figures['refused_busy_or_limited']} refused as busy/limited "
        f"(retried), {figures['queries']} queries, {figures['mutations']} mutations, "
        f"{len(figures['errors'])} client errors, {len(figures['gaps'])} streams with gaps",
        "",
        "| server | samples | RSS MiB first third -> last third (peak) | fds first -> last (peak) "
        "| peak websockets | peak local runs | peak tasks | idle tasks before -> after |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in report["servers"]:
        idle_tasks = (row["idle_before"]["agno_graphql_asyncio_tasks"], row["idle_after"]["agno_graphql_asyncio_tasks"])
        tasks = f"{idle_tasks[0]:.0f} -> {idle_tasks[1]:.0f}"
        rss = f"{row['rss_mib_first_third']} -> {row['rss_mib_last_third']} ({row['rss_mib_peak']})"
        fds = f"{row['fds_first_third']:.0f} -> {row['fds_last_third']:.0f} ({row['fds_peak']:.0f})"
        peaks = f"{row['websockets_peak']:.0f} | {row['local_runs_peak']:.0f} | {row['tasks_peak']:.0f}"
        lines.append(f"| {row['server']} | {row['samples']} | {rss} | {fds} | {peaks} | {tasks} |")
    lines += ["", "| check | result | figures |", "|---|---|---|"]
    for name, ok, detail in report["checks"]:
        lines.append(f"| {name} | {'ok' if ok else 'FAILED'} | {detail} |")
    for kind in ("errors", "gaps"):
        if figures[kind]:
            lines += ["", f"first {kind}:", *(f"  {line}" for line in figures[kind][:10])]
    return "\n".join(lines)


def run(config: SoakConfig, command: str) -> dict[str, Any]:
    soak = Soak(config)
    try:
        soak.start()
        drive = asyncio.run(soak.drive())
        checks = [("client errors", not soak.figures.errors, f"{len(soak.figures.errors)}")]
        checks.append(("every event stream gap-free", not soak.figures.gaps, f"{len(soak.figures.gaps)} with gaps"))
        checks += soak.database_checks()
        resource_checks, servers = soak.resource_checks(drive)
        checks += resource_checks
    finally:
        soak.stop()
    return {
        "command": command,
        "config": asdict(config),
        "load_seconds": drive["load_seconds"],
        "figures": asdict(soak.figures),
        "servers": servers,
        "checks": checks,
        "samples": soak.samples,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=SoakConfig.minutes)
    parser.add_argument("--streams", type=int, default=SoakConfig.streams)
    parser.add_argument(
        "--database-url", default=SoakConfig.database_url, help="MariaDB; a fresh database is made next to it"
    )
    parser.add_argument("--redis-url", default=SoakConfig.redis_url)
    parser.add_argument("--word-delay-ms", type=int, default=SoakConfig.word_delay_ms)
    parser.add_argument("--think-seconds", type=float, default=SoakConfig.think_seconds)
    parser.add_argument("--sample-seconds", type=float, default=SoakConfig.sample_seconds)
    parser.add_argument("--retention-seconds", type=float, default=SoakConfig.retention_seconds)
    parser.add_argument("--seed", type=int, default=SoakConfig.seed)
    parser.add_argument("--keep-database", action="store_true")
    parser.add_argument("--out", type=Path, help="write the report as JSON here too")
    args = parser.parse_args(argv)
    config = SoakConfig(
        database_url=args.database_url,
        redis_url=args.redis_url,
        minutes=args.minutes,
        streams=args.streams,
        word_delay_ms=args.word_delay_ms,
        think_seconds=args.think_seconds,
        sample_seconds=args.sample_seconds,
        retention_seconds=args.retention_seconds,
        seed=args.seed,
        keep_database=args.keep_database,
    )
    command = "python -m bench.soak " + " ".join(argv if argv is not None else sys.argv[1:])
    report = run(config, command.strip())
    print(report_text(report))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2, default=str))
    return 0 if all(ok for _, ok, _ in report["checks"]) else 1


if __name__ == "__main__":
    sys.exit(main())

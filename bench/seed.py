"""Seeding the benchmark database through Agno itself, fast enough to do often, cached when it can be.

Every user first gets real runs: `agent.arun` with the offline model writes sessions and runs
exactly as Agno does. Those runs are the templates for the bulk: copies with new ids, new
texts and spread-out times, written with Agno's own bulk `upsert_sessions` and Agno's run-row
builder (`build_single_run_row`) into Agno's runs table, thousands of rows per statement.
(One concurrent `arun` per new session is slower and, on MariaDB, deadlocks inside Agno's
session upsert: see BENCHMARKS.md.)

A marker table remembers what was seeded; a later run with the same plan and the same Agno
reuses the database instead of seeding again.
"""

from __future__ import annotations

import copy
import hashlib
import json
import random
import time
import uuid
from dataclasses import asdict, dataclass
from typing import Any

import agno
import pymysql
from agno.agent import Agent
from agno.db.base import SessionType
from agno.db.utils import build_single_run_row
from agno.session.agent import AgentSession
from sqlalchemy import text
from sqlalchemy.engine import URL, make_url

from agno_graphql.db.database import Database
from bench.agents import TWO_STEP_AGENT

MARKER_TABLE = "bench_seed_marker"
SEED_FORMAT = 5
HISTORY_USER = "history-user"
STREAM_USER = "stream-user"
# What a history page returns (B2 asks for the newest 50), and what every history run shows of itself:
# user, tool call, result, tool call, result, answer. So ten runs hold more than a page.
HISTORY_PAGE = 50
HISTORY_RUN_MESSAGES = 6
VISIBLE_ROLES = ("user", "assistant", "tool")


@dataclass(frozen=True)
class SeedPlan:
    users: int = 100
    sessions: int = 10_000
    runs_per_session: int = 2
    history_runs: tuple[int, ...] = (10, 100, 1000)

    def fingerprint(self) -> str:
        version = getattr(agno, "__version__", None) or _agno_version()
        raw = json.dumps({"plan": asdict(self), "agno": version, "format": SEED_FORMAT}, sort_keys=True)
        return hashlib.sha256(raw.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class SeededData:
    users: list[str]
    history_sessions: dict[int, str]  # runs -> session id, all owned by HISTORY_USER
    reused: bool
    seconds: float


def _agno_version() -> str:
    from importlib.metadata import version

    return version("agno")


def user_id(i: int) -> str:
    return f"user-{i:03d}"


def history_session_id(runs: int) -> str:
    return f"history-{runs}"


def _connect(url: URL, database: str | None = None) -> pymysql.connections.Connection:
    return pymysql.connect(
        host=url.host or "127.0.0.1",
        port=url.port or 3306,
        user=url.username or "root",
        password=url.password or "",
        database=database,
        autocommit=True,
    )


def seeded_fingerprint(raw_url: str) -> str | None:
    """The plan the database at `raw_url` was seeded with, or None (missing, empty, half-seeded)."""
    url = make_url(raw_url)
    conn = _connect(url)
    try:
        with conn.cursor() as cursor:
            cursor.execute(
                "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = %s AND table_name = %s",
                (url.database, MARKER_TABLE),
            )
            row = cursor.fetchone()
            if not row or not row[0]:
                return None
            cursor.execute(f"SELECT fingerprint FROM `{url.database}`.{MARKER_TABLE} LIMIT 1")
            found = cursor.fetchone()
            return str(found[0]) if found else None
    finally:
        conn.close()


def recreate_database(raw_url: str) -> None:
    url = make_url(raw_url)
    conn = _connect(url)
    try:
        with conn.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{url.database}`")
            cursor.execute(f"CREATE DATABASE `{url.database}` CHARACTER SET utf8mb4")
    finally:
        conn.close()


def drop_database(raw_url: str) -> None:
    url = make_url(raw_url)
    conn = _connect(url)
    try:
        with conn.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{url.database}`")
    finally:
        conn.close()


async def _real_run(agent: Agent, message: str, session_id: str, user: str) -> None:
    async for _event in agent.arun(message, session_id=session_id, user_id=user, stream=True, stream_events=True):
        pass


def _fresh_run(template: dict[str, Any], session_id: str, user: str, created_at: int, words: str) -> dict[str, Any]:
    """A copy of a real run with its own ids, texts and time."""
    run = copy.deepcopy(template)
    run["run_id"] = str(uuid.uuid4())
    run["session_id"] = session_id
    run["user_id"] = user
    run["created_at"] = created_at
    original_input = (run.get("input") or {}).get("input_content")
    for message in run.get("messages") or []:
        message["id"] = str(uuid.uuid4())
        message["created_at"] = created_at
        if message.get("role") == "user" and original_input is not None and message.get("content") == original_input:
            message["content"] = words
        elif (
            message.get("role") == "assistant"
            and isinstance(message.get("content"), str)
            and "You said" in message["content"]
        ):
            message["content"] = f"You said: {words}"
    if isinstance(run.get("input"), dict):
        run["input"]["input_content"] = words
    if isinstance(run.get("content"), str) and "You said" in run["content"]:
        run["content"] = f"You said: {words}"
    return run


_WORDS = [
    "alpha",
    "bravo",
    "charlie",
    "delta",
    "echo",
    "foxtrot",
    "golf",
    "hotel",
    "india",
    "juliet",
    "kilo",
    "lima",
    "mike",
    "november",
    "oscar",
    "papa",
]


def _phrase(rng: random.Random, n: int = 8) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(n))


def _history_question(run_index: int) -> str:
    """A new text for every history run, asking what the template run computed (its calls and answer stay true)."""
    return f"Question {run_index}: what is 12 * 7 + 5?"


def visible_messages(run: dict[str, Any]) -> int:
    """The run's messages a history page can return (its system message and copied-in history are not)."""
    return sum(1 for m in run.get("messages") or [] if m.get("role") in VISIBLE_ROLES and not m.get("from_history"))


async def _templates(db: Database, agents: dict[str, Agent], users: list[str]) -> dict[str, Any]:
    """Real runs through Agno: one per user (the session list), a two-step tool run (history)."""
    for i, user in enumerate(users):
        await _real_run(
            agents["assistant"], f"Hello, this is {user}: please restate message {i}.", f"real-{user}", user
        )
    await _real_run(agents[TWO_STEP_AGENT], _history_question(0), "real-history", HISTORY_USER)
    session = await db.agno_db.get_session(f"real-{users[0]}", session_type=SessionType.AGENT)
    history = await db.agno_db.get_session("real-history", session_type=SessionType.AGENT)
    assert isinstance(session, AgentSession) and isinstance(history, AgentSession)
    assert session.runs and history.runs and len(history.runs) == 1

    def as_dict(run: Any) -> dict[str, Any]:
        return run if isinstance(run, dict) else run.to_dict()

    history_run = as_dict(history.runs[0])
    shown = visible_messages(history_run)
    assert shown == HISTORY_RUN_MESSAGES, f"the history template run shows {shown} messages, not {HISTORY_RUN_MESSAGES}"
    return {"session": session, "chat_run": as_dict(session.runs[0]), "history": history, "history_run": history_run}


async def _insert_runs(db: Database, rows: list[dict[str, Any]], chunk: int = 1000) -> None:
    runs = db.runs
    for start in range(0, len(rows), chunk):
        async with db.engine.begin() as conn:
            await conn.execute(runs.insert(), rows[start : start + chunk])


async def _upsert_sessions(db: Database, sessions: list[AgentSession], chunk: int = 1000) -> None:
    for start in range(0, len(sessions), chunk):
        await db.agno_db.upsert_sessions(sessions[start : start + chunk], deserialize=False, preserve_updated_at=True)


def _session_like(template: AgentSession, session_id: str, user: str, created_at: int, updated_at: int) -> AgentSession:
    session = copy.deepcopy(template)
    session.session_id = session_id
    session.user_id = user
    session.created_at = created_at
    session.updated_at = updated_at
    session.runs = []
    return session


async def seed(raw_url: str, agents: list[Agent], plan: SeedPlan, log: Any = print) -> SeededData:
    """Seed (or reuse) the MariaDB database at `raw_url` following `plan`."""
    if min(plan.history_runs, default=0) * HISTORY_RUN_MESSAGES < HISTORY_PAGE:
        raise ValueError(f"history sessions {plan.history_runs}: each must hold a page of {HISTORY_PAGE} messages")
    started = time.perf_counter()
    users = [user_id(i) for i in range(plan.users)]
    history = {runs: history_session_id(runs) for runs in plan.history_runs}
    fingerprint = plan.fingerprint()
    if seeded_fingerprint(raw_url) == fingerprint:
        log(f"seed: reusing the seeded database (plan {fingerprint})")
        return SeededData(users, history, reused=True, seconds=time.perf_counter() - started)

    log(f"seed: seeding {plan.sessions} sessions over {plan.users} users, history sessions {plan.history_runs}")
    recreate_database(raw_url)
    db = Database(raw_url)
    try:
        return await _seed_into(db, agents, plan, users, history, fingerprint, started, log)
    finally:
        await db.dispose()


async def _seed_into(
    db: Database,
    agents: list[Agent],
    plan: SeedPlan,
    users: list[str],
    history: dict[int, str],
    fingerprint: str,
    started: float,
    log: Any,
) -> SeededData:
    await db.ensure_ready()
    by_id = {agent.id: agent for agent in agents}
    for agent in by_id.values():
        agent.db = db.agno_db
        agent.telemetry = False
    t0 = time.perf_counter()
    templates = await _templates(db, by_id, users)
    real_seconds = time.perf_counter() - t0

    rng = random.Random(5)
    now = int(time.time())
    new_sessions: list[AgentSession] = []
    run_rows: list[dict[str, Any]] = []
    for n in range(plan.sessions - plan.users):
        user = users[n % plan.users]
        session_id = f"s-{n:06d}"
        created = now - rng.randint(3600, 60 * 86400)
        updated = created + rng.randint(0, 3600)
        new_sessions.append(_session_like(templates["session"], session_id, user, created, updated))
        for run_index in range(plan.runs_per_session):
            run = _fresh_run(templates["chat_run"], session_id, user, created + run_index, _phrase(rng))
            run_rows.append(build_single_run_row(run, session_id, user_id=user, run_index=run_index))
    for runs, session_id in history.items():
        created = now - 86400
        new_sessions.append(_session_like(templates["history"], session_id, HISTORY_USER, created, created + runs))
        for run_index in range(runs):
            question = _history_question(run_index)
            run = _fresh_run(templates["history_run"], session_id, HISTORY_USER, created + run_index, question)
            run_rows.append(build_single_run_row(run, session_id, user_id=HISTORY_USER, run_index=run_index))
    t1 = time.perf_counter()
    await _upsert_sessions(db, new_sessions)
    await _insert_runs(db, run_rows)
    bulk_seconds = time.perf_counter() - t1
    async with db.engine.begin() as conn:
        await conn.execute(text(f"CREATE TABLE IF NOT EXISTS {MARKER_TABLE} (fingerprint VARCHAR(64) NOT NULL)"))
        await conn.execute(text(f"DELETE FROM {MARKER_TABLE}"))
        await conn.execute(text(f"INSERT INTO {MARKER_TABLE} VALUES (:f)"), {"f": fingerprint})
        await conn.execute(text("ANALYZE TABLE agno_sessions, agno_runs"))
    total = time.perf_counter() - started
    log(
        f"seed: {len(users) + 1} real runs through agent.arun in {real_seconds:.1f} s, "
        f"{len(new_sessions)} sessions and {len(run_rows)} runs in bulk in {bulk_seconds:.1f} s"
    )
    return SeededData(users, history, reused=False, seconds=total)

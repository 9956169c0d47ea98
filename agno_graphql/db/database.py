"""Building Agno's async database from one SQLAlchemy URL, and keeping it usable.

The Agno db object's engine serves the agents (which write sessions and runs) and our own writes. Our read
queries use Agno's table objects; on MySQL they go through the driver's own pool (`DriverReader`), whose
connections autocommit: a read is one round trip, where the writer's pool adds a ping before and a ROLLBACK after
every use (BENCHMARKS.md, change 12), and it skips SQLAlchemy's execution machinery (change 15). On SQLite they go
through the one engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agno.db.mysql import AsyncMySQLDb
from agno.db.mysql.schemas import get_table_schema_definition
from agno.db.sqlite import AsyncSqliteDb
from agno.db.utils import json_serializer
from agno.session import Session
from opentelemetry.trace import Tracer
from sqlalchemy import JSON, Executable, Index, MetaData, Table, select, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from agno_graphql.compat.agno_parts import TableResolution, agno_table, forget_agno_table
from agno_graphql.db.attachments import attachments_table
from agno_graphql.db.driver_reads import DriverReader
from agno_graphql.errors import DatabaseUnavailable
from agno_graphql.settings import SettingsError

log = logging.getLogger(__name__)

_ASYNC_DRIVERS = {"sqlite": "sqlite+aiosqlite", "mysql": "mysql+aiomysql", "mariadb": "mysql+aiomysql"}
_RETRY_AFTER_FAILURE_SECONDS = 1.0
_SETUP_ATTEMPTS = 3
_STORE_FIRST_DELAY_SECONDS = 0.2
_STORE_MAX_DELAY_SECONDS = 2.0
_ANSWER_SECONDS = 5.0
# Each of the two MySQL pools (Agno's and the reader's): up to 30 connections, waiting up to 30 s for one.
_POOL_OPTIONS: dict[str, Any] = {"pool_recycle": 1800, "pool_size": 10, "max_overflow": 20, "pool_timeout": 30}


class DatabaseUrlError(SettingsError):
    """The database URL cannot be used; the message says why."""

    def __init__(self, problem: str) -> None:
        super().__init__(f"AGNO_GRAPHQL_DATABASE_URL: {problem}")


def async_database_url(raw: str) -> URL:
    """Parse a user's URL and switch it to the async driver Agno's async classes need."""
    try:
        url = make_url(raw)
    except ArgumentError:
        raise DatabaseUrlError(f"not a SQLAlchemy URL: {raw!r} (expected e.g. sqlite:///file.db)") from None
    backend = url.get_backend_name()
    if backend not in _ASYNC_DRIVERS:
        raise DatabaseUrlError(f"unsupported database {backend!r}: use sqlite:// or mysql+pymysql:// URLs")
    if backend in {"mysql", "mariadb"} and not url.database:
        raise DatabaseUrlError("the MySQL URL names no database (mysql+pymysql://user@host:3306/DATABASE)")
    if backend == "sqlite" and url.database in (None, "", ":memory:"):
        raise DatabaseUrlError("SQLite needs a file (sqlite:///path/to/file.db); in-memory is not shared")
    return url.set(drivername=_ASYNC_DRIVERS[backend])


def _json_columns(table_type: str, session_table_name: str) -> list[str]:
    schema = get_table_schema_definition(table_type, session_table_name=session_table_name)
    return [name for name, spec in schema.items() if isinstance(spec, dict) and spec.get("type") is JSON]


def _run_id(run: Any) -> str:
    return str(run.get("run_id") if isinstance(run, dict) else getattr(run, "run_id", None))


@dataclass
class UnsavedRun:
    """A run row Agno failed to write, with the arguments it wrote it with."""

    run: Any
    session_id: str
    user_id: str | None
    run_index: int | None


class JsonColumnsRestored(TableResolution):
    """Agno's AsyncMySQLDb with the JSON column types put back on reflected tables.

    MariaDB stores JSON as LONGTEXT with a json_valid check, so a reflected table comes back with text columns:
    reads return strings and dict writes fail. Agno's own schema says which columns are JSON; we put that type back.
    """

    def table_resolved(self, table: Table, table_type: str) -> None:
        if table_type not in {"sessions", "runs", "memories"}:
            return
        for column in _json_columns(table_type, self.session_table_name):
            if column in table.c and not isinstance(table.c[column].type, JSON):
                table.c[column].type = JSON()


class AgnoMySQLDb(JsonColumnsRestored):
    """The Agno database of a MySQL or MariaDB URL: JSON columns restored, and a memory of what Agno failed to
    read or write as a run started or ended.

    When the database is down as a run ends, Agno logs the failed session and run writes and goes on (its
    run still reports completed). Each failed write is kept here, exactly as Agno made it, so the run manager
    can write it again once the database is back (`Database.store_unsaved`). A session that cannot be read
    as a run starts is an error here, not "no such session": Agno would otherwise start a blank session and
    later write it over the stored one.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.unsaved_sessions: dict[str, Session] = {}
        self.unsaved_runs: dict[str, UnsavedRun] = {}
        self.unread_sessions: set[str] = set()

    async def get_session(
        self,
        session_id: str,
        session_type: Any = None,
        user_id: str | None = None,
        deserialize: bool | None = True,
        runs_limit: int | None = None,
    ) -> Any:
        found = await super().get_session(session_id, session_type, user_id, deserialize, runs_limit)
        if found is None and await self._stored_or_unknown(session_id, user_id):
            self.unread_sessions.add(session_id)
            raise DatabaseUnavailable()
        return found

    async def _stored_or_unknown(self, session_id: str, user_id: str | None) -> bool:
        """After Agno found no session: whether it is there after all (so Agno's read failed), or the database
        cannot say. False only when the session is known not to exist."""
        try:
            table = await agno_table(self, "sessions")
            if table is None:
                return False
            query = select(table.c.session_id).where(table.c.session_id == session_id)
            if user_id is not None:
                query = query.where(table.c.user_id == user_id)
            async with asyncio.timeout(_ANSWER_SECONDS), self.db_engine.connect() as conn:
                return (await conn.execute(query)).first() is not None
        except Exception:
            return True

    async def upsert_session(self, session: Session, deserialize: bool | None = True) -> Any:
        saved = await super().upsert_session(session, deserialize)
        if saved is None:
            self.unsaved_sessions[session.session_id] = session
        else:
            self.unsaved_sessions.pop(session.session_id, None)
        return saved

    async def upsert_run(
        self, run: Any, session_id: str, user_id: str | None = None, run_index: int | None = None
    ) -> None:
        run_id = _run_id(run)
        try:
            await super().upsert_run(run, session_id, user_id, run_index)
        except Exception:
            self.unsaved_runs[run_id] = UnsavedRun(run, session_id, user_id, run_index)
            raise
        self.unsaved_runs.pop(run_id, None)

    async def answers(self) -> bool:
        """Whether the database answers a trivial query, within a bound (a lost network may not refuse)."""
        try:
            async with asyncio.timeout(_ANSWER_SECONDS), self.db_engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception:
            return False
        return True

    async def store_unsaved(self, run_id: str, session_id: str, within_seconds: float) -> bool:
        """Write again what Agno failed to write at the end of this run, retrying with backoff for at most
        `within_seconds`. True when the run is stored as it ended (also when nothing had failed); False
        when its session could not be read, or the writes did not succeed in time."""
        if session_id in self.unread_sessions:
            self.unread_sessions.discard(session_id)
            self.unsaved_runs.pop(run_id, None)
            return False
        session = self.unsaved_sessions.pop(session_id, None)
        if session is not None and run_id not in {_run_id(run) for run in session.runs or []}:
            session = None  # a write left from an earlier run of the session: not this run's to redo
        unsaved_run = self.unsaved_runs.pop(run_id, None)
        if session is None and unsaved_run is None:
            return True
        log.warning("run %s: not stored at its end (database unavailable); retrying", run_id)
        deadline = time.monotonic() + within_seconds
        delay = _STORE_FIRST_DELAY_SECONDS
        while True:
            if await self.answers():
                if session is not None and await super().upsert_session(session) is not None:
                    session = None
                if session is None and unsaved_run is not None:
                    with contextlib.suppress(Exception):
                        await super().upsert_run(
                            unsaved_run.run, unsaved_run.session_id, unsaved_run.user_id, unsaved_run.run_index
                        )
                        unsaved_run = None
            if session is None and unsaved_run is None:
                log.warning("run %s: stored after a retry", run_id)
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                log.error("run %s: still not stored after %.0f s; reported as failed", run_id, within_seconds)
                return False
            await asyncio.sleep(min(delay, remaining))
            delay = min(delay * 2, _STORE_MAX_DELAY_SECONDS)


# Indexes our list queries need: one per (filter, order) pair, id last for keyset ties.
_SESSION_INDEXES = [
    ("user_id", "updated_at", "session_id"),
    ("user_id", "created_at", "session_id"),
    ("user_id", "agent_id", "updated_at", "session_id"),
    ("user_id", "agent_id", "created_at", "session_id"),
]


def session_index_name(table_name: str, columns: tuple[str, ...]) -> str:
    short = "_".join(c.replace("_id", "").replace("_at", "") for c in columns)
    return f"ix_{table_name}_agql_{short}"


def _create_index(sync_conn: Any, index: Index) -> None:
    index.create(sync_conn, checkfirst=True)


class Database:
    """The Agno database plus readiness: set up lazily, retried until it works."""

    def __init__(self, raw_url: str, tracer: Tracer | None = None) -> None:
        self.url = async_database_url(raw_url)
        self.dialect = self.url.get_backend_name()
        self.agno_db: AsyncMySQLDb | AsyncSqliteDb
        if self.dialect == "sqlite":
            Path(self.url.database or "").parent.mkdir(parents=True, exist_ok=True)
            engine = create_async_engine(self.url, json_serializer=json_serializer, connect_args={"timeout": 30})
            self.agno_db = AsyncSqliteDb(db_engine=engine)
            self.driver_reader: DriverReader | None = None
        else:
            engine = create_async_engine(
                self.url,
                json_serializer=json_serializer,
                pool_pre_ping=True,
                **_POOL_OPTIONS,
            )
            self.agno_db = AgnoMySQLDb(db_engine=engine, db_schema=self.url.database)
            self.driver_reader = DriverReader(
                self.url,
                engine.dialect,
                max_connections=_POOL_OPTIONS["pool_size"] + _POOL_OPTIONS["max_overflow"],
                wait_seconds=_POOL_OPTIONS["pool_timeout"],
                recycle_seconds=_POOL_OPTIONS["pool_recycle"],
                tracer=tracer,
            )
        self.engine: AsyncEngine = engine
        self._sessions: Table | None = None
        self._runs: Table | None = None
        self._attachments = attachments_table(MetaData())
        self._lock = asyncio.Lock()
        self._last_failure = 0.0
        # Statements built once and reused with new parameters (see db/sessions.py), by query name.
        self.statement_cache: dict[str, dict[Any, Any]] = {}

    @property
    def sessions(self) -> Table:
        assert self._sessions is not None, "call ensure_ready() first"
        return self._sessions

    @property
    def runs(self) -> Table:
        assert self._runs is not None, "call ensure_ready() first"
        return self._runs

    @property
    def attachments(self) -> Table:
        """Ours (db/attachments.py), created with Agno's tables."""
        return self._attachments

    @property
    def is_ready(self) -> bool:
        return self._sessions is not None and self._runs is not None

    async def ensure_ready(self) -> None:
        """Create or reflect the tables and add our indexes; DatabaseUnavailable if it cannot."""
        if self.is_ready:
            return
        if time.monotonic() - self._last_failure < _RETRY_AFTER_FAILURE_SECONDS:
            raise DatabaseUnavailable()
        async with self._lock:
            if self.is_ready:
                return
            for attempt in range(1, _SETUP_ATTEMPTS + 1):
                try:
                    async with self._setup_lock():
                        sessions, runs = await self._set_up_tables()
                    break
                except Exception as exc:
                    # Another process may have created a table or an index between our check and our
                    # CREATE (SQLite has no cross-process lock here): a new attempt reflects what it made.
                    self._forget_tables()
                    if attempt < _SETUP_ATTEMPTS and await self._reachable():
                        await asyncio.sleep(0.05 * attempt)
                        continue
                    self._last_failure = time.monotonic()
                    log.warning("database not ready: %s", type(exc).__name__)
                    raise DatabaseUnavailable() from exc
            self._sessions, self._runs = sessions, runs

    async def _set_up_tables(self) -> tuple[Table, Table]:
        sessions = await agno_table(self.agno_db, "sessions", create=True)
        runs = await agno_table(self.agno_db, "runs", create=True)
        assert sessions is not None and runs is not None
        await self._create_indexes(sessions)
        async with self.engine.begin() as conn:
            await conn.run_sync(self._attachments.create, checkfirst=True)
        return sessions, runs

    def _forget_tables(self) -> None:
        for name in (self.agno_db.session_table_name, self.agno_db.runs_table_name):
            forget_agno_table(self.agno_db, name)

    async def _reachable(self) -> bool:
        try:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception:
            return False
        return True

    @asynccontextmanager
    async def _setup_lock(self) -> AsyncIterator[None]:
        """On MySQL, one process at a time sets up the tables (several workers start together on a new
        database, and CREATE TABLE / CREATE INDEX are not idempotent there)."""
        if self.dialect == "sqlite":
            yield
            return
        name = f"agno_graphql_setup:{self.url.database}"[:64]
        async with self.engine.connect() as conn:
            got = (await conn.execute(text("SELECT GET_LOCK(:name, :wait)"), {"name": name, "wait": 60})).scalar()
            if got != 1:
                raise TimeoutError("another process holds the table setup lock")
            try:
                yield
            finally:
                await conn.execute(text("SELECT RELEASE_LOCK(:name)"), {"name": name})

    async def _create_indexes(self, sessions: Table) -> None:
        existing = {index.name for index in sessions.indexes}
        async with self.engine.begin() as conn:
            for columns in _SESSION_INDEXES:
                name = session_index_name(sessions.name, columns)
                if name in existing:
                    continue
                index = Index(name, *(sessions.c[c] for c in columns))
                await conn.run_sync(_create_index, index)

    async def store_unsaved(self, run_id: str, session_id: str, within_seconds: float) -> bool:
        """After a run has ended: True once it is stored as it ended, False if it could not be within the
        bound (see `AgnoMySQLDb`; SQLite is a local file, its writes do not fail this way)."""
        if isinstance(self.agno_db, AgnoMySQLDb):
            return await self.agno_db.store_unsaved(run_id, session_id, within_seconds)
        return True

    async def ping(self) -> bool:
        try:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
            await self.ensure_ready()
        except Exception:
            return False
        return True

    async def read(self, statement: Executable, params: Mapping[str, Any] | None = None) -> Sequence[Any]:
        """The rows of one read: on MySQL through the driver's pool (which replaces a connection that died since
        its last use instead of pinging before every use), on SQLite through the engine."""
        if self.driver_reader is not None:
            return await self.driver_reader.read(statement, params)
        async with self.engine.connect() as conn:
            return (await conn.execute(statement, params)).all()

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self.driver_reader is not None:
            await self.driver_reader.dispose()

"""Reads on MySQL through a driver's own pool (asyncmy), with the SQL and values made by SQLAlchemy.

A page of sessions costs MariaDB about 0.3 ms; through SQLAlchemy's async engine and aiomysql the same read cost
us about 0.9 ms of CPU more (SQLAlchemy's greenlet adaptation, execution context and result objects, and
pymysql's protocol in pure Python: BENCHMARKS.md, change 15). asyncmy speaks the same protocol in compiled code
and answers the page in about a third of aiomysql's CPU.

The statements stay SQLAlchemy statements on Agno's tables: each is compiled by SQLAlchemy for the engine's
dialect (once for a statement object that is reused, as the page and history statements are), its values are
bound and processed as SQLAlchemy would (JSON paths, expanding IN lists), and the selected columns' result
processors are applied (JSON documents come back as Python objects). Connections autocommit, so a read is one
round trip and nothing is rolled back when a connection goes back to the pool.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import asyncmy
import asyncmy.errors
from opentelemetry.trace import Tracer
from sqlalchemy import ClauseElement, Executable
from sqlalchemy.dialects.mysql.asyncmy import dialect as asyncmy_dialect
from sqlalchemy.engine import URL, Dialect
from sqlalchemy.sql.compiler import SQLCompiler

from agno_graphql.errors import DatabaseUnavailable
from agno_graphql.tracing import span

# The driver's errors that mean the connection or the server is gone, not that the statement is wrong.
_DISCONNECTED = (asyncmy.errors.OperationalError, asyncmy.errors.InterfaceError, ConnectionError, OSError, EOFError)
_COMPILED_KEPT = 256

# Called as a read is sent with (statement, arguments, None), and once it is answered with the number of rows, or
# failed with -1 (diagnostics and tests).
StatementWatcher = Callable[[str, Sequence[Any], int | None], None]


class _Compiled:
    """One statement compiled for the dialect, and how to turn its values and rows into what SQLAlchemy gives."""

    __slots__ = ("bind_processors", "compiled", "post_compiled", "result_processors", "statement")

    def __init__(self, statement: Executable, dialect: Dialect) -> None:
        self.statement = statement  # kept so that its id is not reused while this entry is kept
        assert isinstance(statement, ClauseElement)
        compiled = statement.compile(dialect=dialect)
        assert isinstance(compiled, SQLCompiler) and compiled.positional
        self.compiled = compiled
        self.post_compiled = bool(compiled.literal_execute_params or compiled.post_compile_params)
        binds = (
            (name, bind.type.dialect_impl(dialect).bind_processor(dialect)) for name, bind in compiled.binds.items()
        )
        self.bind_processors: dict[str, Callable[[Any], Any]] = {name: bind for name, bind in binds if bind is not None}
        columns = getattr(statement, "selected_columns", None)
        results = [column.type.dialect_impl(dialect).result_processor(dialect, None) for column in columns or ()]
        self.result_processors = results if any(results) else None

    def sql_and_arguments(self, params: Mapping[str, Any] | None) -> tuple[str, tuple[Any, ...]]:
        compiled = self.compiled
        processors: Mapping[str, Callable[[Any], Any]] = self.bind_processors
        if self.post_compiled:  # IN lists: one parameter per item, made for these values
            expanded = compiled.construct_expanded_state(params, escape_names=False)
            sql, values, order = expanded.statement, expanded.parameters, expanded.positiontup or ()
            processors = {**processors, **expanded.processors}
        else:
            values = compiled.construct_params(params, escape_names=False)
            sql, order = compiled.string, compiled.positiontup or ()
        arguments = tuple(processors[name](values[name]) if name in processors else values[name] for name in order)
        return sql, arguments

    def rows(self, raw: Sequence[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        processors = self.result_processors
        if processors is None:
            return list(raw)
        return [
            tuple(value if process is None else process(value) for process, value in zip(processors, row, strict=True))
            for row in raw
        ]


class DriverReader:
    """Single-statement reads through an asyncmy pool opened at the first read; `dialect` (the engine's) compiles."""

    def __init__(
        self,
        url: URL,
        dialect: Dialect,
        max_connections: int,
        wait_seconds: float,
        recycle_seconds: int,
        tracer: Tracer | None = None,
    ) -> None:
        self._tracer = tracer
        _args, self._connect_options = asyncmy_dialect().create_connect_args(url)
        self._dialect = dialect
        self._max_connections = max_connections
        self._wait_seconds = wait_seconds
        self._recycle_seconds = recycle_seconds
        self._pool: asyncmy.Pool | None = None
        self._opening: asyncio.Lock | None = None
        self._compiled: dict[int, _Compiled] = {}
        self.watchers: list[StatementWatcher] = []

    @property
    def checked_out(self) -> int:
        pool = self._pool
        return 0 if pool is None else pool.size - pool.freesize

    @property
    def checked_in(self) -> int:
        return 0 if self._pool is None else self._pool.freesize

    def _prepared(self, statement: Executable) -> _Compiled:
        entry = self._compiled.get(id(statement))
        if entry is not None and entry.statement is statement:
            return entry
        entry = _Compiled(statement, self._dialect)
        if len(self._compiled) >= _COMPILED_KEPT:
            del self._compiled[next(iter(self._compiled))]
        self._compiled[id(statement)] = entry
        return entry

    async def read(self, statement: Executable, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        """The rows of one read. A pooled connection that died since its last use (the server restarted) fails the
        statement; the idle connections are then dropped and the read is tried once more on a new connection, which
        is safe as a read changes nothing. Unreachable: DatabaseUnavailable."""
        prepared = self._prepared(statement)
        sql, arguments = prepared.sql_and_arguments(params)
        with span(self._tracer, "SELECT", **{"db.system": "mysql", "db.statement": sql}):
            return await self._read(prepared, sql, arguments)

    async def _read(self, prepared: _Compiled, sql: str, arguments: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        for attempt in range(2):
            try:
                raw = await self._execute(sql, arguments)
            except _DISCONNECTED as error:
                if attempt:
                    raise DatabaseUnavailable() from error
                await self._drop_idle_connections()
                continue
            return prepared.rows(raw)
        raise AssertionError("unreachable")

    async def _execute(self, sql: str, arguments: tuple[Any, ...]) -> Sequence[tuple[Any, ...]]:
        pool = await self._open()
        try:
            async with asyncio.timeout(self._wait_seconds):
                conn = await pool.acquire()
        except TimeoutError:
            raise DatabaseUnavailable() from None
        rows: Sequence[tuple[Any, ...]] | None = None
        for watch in self.watchers:
            watch(sql, arguments, None)
        try:
            async with conn.cursor() as cursor:
                await cursor.execute(sql, arguments)
                rows = await cursor.fetchall()
            return rows
        finally:
            for watch in self.watchers:
                watch(sql, arguments, -1 if rows is None else len(rows))
            if rows is None:
                # Cancelled or failed half way, the connection may still hold an unread answer: never reuse it.
                conn.close()
            pool.release(conn)

    async def _open(self) -> asyncmy.Pool:
        if self._pool is not None:
            return self._pool
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:
            if self._pool is None:
                self._pool = await asyncmy.create_pool(
                    minsize=0,
                    maxsize=self._max_connections,
                    pool_recycle=self._recycle_seconds,
                    autocommit=True,
                    **self._connect_options,
                )
        return self._pool

    async def _drop_idle_connections(self) -> None:
        if self._pool is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(self._wait_seconds):
                    await self._pool.clear()

    async def dispose(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(self._wait_seconds):
                    await pool.wait_closed()

"""Database locks held by a connection of the test's own, and the server's statements seen waiting on them."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url

from agno_graphql.db.database import Database
from tests.conftest import mysql_connect

WAIT_SECONDS = 20.0


class InFlightStatements:
    """Statements the server has sent to the database and not yet got an answer for: through its engine, and on
    MySQL through its driver reader."""

    def __init__(self, db: Database) -> None:
        self._engines = {db.engine.sync_engine}
        self._reader = db.driver_reader
        self._lock = threading.Lock()
        self._statements: dict[int, str] = {}
        self._reads: list[str] = []
        self._hooks: tuple[tuple[str, Callable[..., None]], ...] = (
            ("before_cursor_execute", self._before),
            ("after_cursor_execute", self._after),
            ("handle_error", self._error),
        )
        for engine in self._engines:
            for name, hook in self._hooks:
                event.listen(engine, name, hook)
        if self._reader is not None:
            self._reader.watchers.append(self._read)

    def _read(self, statement: str, arguments: Any, rows: int | None) -> None:
        with self._lock:
            if rows is None:
                self._reads.append(statement)
            else:
                self._reads.remove(statement)

    def _before(self, conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
        with self._lock:
            self._statements[id(context)] = statement

    def _after(self, conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
        with self._lock:
            self._statements.pop(id(context), None)

    def _error(self, context: Any) -> None:
        with self._lock:
            self._statements.pop(id(context.execution_context), None)

    def on(self, table: str) -> int:
        with self._lock:
            return sum(1 for statement in [*self._statements.values(), *self._reads] if table in statement)

    def writes_on(self, table: str) -> int:
        """In-flight statements through the engine that write `table` or lock its rows to write them."""
        with self._lock:
            return sum(1 for statement in self._statements.values() if table in statement and _writes(statement))

    def close(self) -> None:
        for engine in self._engines:
            for name, hook in self._hooks:
                event.remove(engine, name, hook)
        if self._reader is not None:
            self._reader.watchers.remove(self._read)


class OutsideLock:
    """A lock held by a connection of the test's own, released once."""

    def __init__(self, database_url: str, mysql_statement: str) -> None:
        url = make_url(database_url)
        self._release: Callable[[], None]
        if url.get_backend_name() == "sqlite":
            # Agno runs SQLite in WAL mode: a write transaction makes writers wait, never readers.
            conn = sqlite3.connect(url.database or "", timeout=10, isolation_level=None)
            conn.execute("BEGIN IMMEDIATE")

            def release_sqlite() -> None:
                conn.execute("ROLLBACK")
                conn.close()

            self._release = release_sqlite
        else:
            mysql = mysql_connect(url, autocommit=True)
            with mysql.cursor() as cursor:
                cursor.execute("SET SESSION lock_wait_timeout = 10")
                cursor.execute(mysql_statement)

            def release_mysql() -> None:
                with mysql.cursor() as cursor:
                    cursor.execute("UNLOCK TABLES")
                mysql.close()

            self._release = release_mysql
        self.held = True

    def release(self) -> None:
        if self.held:
            self.held = False
            self._release()


def _writes(statement: str) -> bool:
    words = statement.upper()
    return words.lstrip().startswith(("INSERT", "UPDATE", "DELETE")) or "FOR UPDATE" in words


async def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting until {what}")
        await asyncio.sleep(0.02)

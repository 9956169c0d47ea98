"""Test fixtures: every test runs on SQLite and on MariaDB, against a real uvicorn server.

MariaDB is taken from AGNO_GRAPHQL_TEST_MYSQL_URL (default: root@127.0.0.1:3306).
Each test run creates its own database there and drops it at the end. When
MariaDB cannot be reached the MySQL half is skipped loudly, unless
AGNO_GRAPHQL_REQUIRE_MYSQL=1 (as in CI), which makes that a failure.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jwt
import pymysql
import pytest
import uvicorn
from sqlalchemy.engine import URL, make_url

from agno_graphql.app import build_services, create_app
from agno_graphql.cli import server_options
from agno_graphql.services import Services
from agno_graphql.settings import Settings
from agno_graphql.tracing import Tracing

if TYPE_CHECKING:
    from tests.openai_stub import OpenAIStub

MYSQL_BASE_URL = os.environ.get("AGNO_GRAPHQL_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test")
REQUIRE_MYSQL = os.environ.get("AGNO_GRAPHQL_REQUIRE_MYSQL") == "1"
TEST_SECRET = "test-secret-for-the-suite-only-0123456789"


def mysql_connect(url: URL, **options: Any) -> pymysql.connections.Connection:
    """A plain PyMySQL connection to the server (and database, if any) of a SQLAlchemy URL."""
    return pymysql.connect(
        host=url.host or "127.0.0.1",
        port=url.port or 3306,
        user=url.username or "root",
        password=url.password or "",
        database=url.database,
        **options,
    )


def _mysql_reachable() -> str | None:
    try:
        mysql_connect(make_url(MYSQL_BASE_URL).set(database=None), connect_timeout=3).close()
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


MYSQL_PROBLEM = _mysql_reachable()


def pytest_report_header(config: pytest.Config) -> str:
    if MYSQL_PROBLEM is None:
        return f"MySQL/MariaDB: {make_url(MYSQL_BASE_URL).render_as_string(hide_password=True)} (reachable)"
    return f"MySQL/MariaDB: NOT REACHABLE ({MYSQL_PROBLEM}): the MySQL half of the suite is SKIPPED"


def pytest_sessionstart(session: pytest.Session) -> None:
    if MYSQL_PROBLEM is not None and REQUIRE_MYSQL:
        pytest.exit(f"AGNO_GRAPHQL_REQUIRE_MYSQL=1 but MariaDB is not reachable: {MYSQL_PROBLEM}", returncode=3)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if MYSQL_PROBLEM is not None:
        terminalreporter.write_sep(
            "!", "MySQL/MariaDB WAS NOT REACHED: the MySQL half of the suite was SKIPPED", red=True
        )


class MySQLDatabases:
    """Creates throwaway databases on the test server and drops them afterwards."""

    def __init__(self) -> None:
        self.url = make_url(MYSQL_BASE_URL)
        self.created: list[str] = []

    def _connect(self) -> pymysql.connections.Connection:
        return mysql_connect(self.url.set(database=None), autocommit=True)

    def create(self, label: str) -> str:
        name = f"agql_{label}_{uuid.uuid4().hex[:10]}"
        conn = self._connect()
        with conn.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        conn.close()
        self.created.append(name)
        return self.url.set(drivername="mysql+pymysql", database=name).render_as_string(hide_password=False)

    def drop_all(self) -> None:
        conn = self._connect()
        with conn.cursor() as cursor:
            for name in self.created:
                cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
        conn.close()


@pytest.fixture(scope="session")
def mysql_databases() -> Iterator[MySQLDatabases]:
    databases = MySQLDatabases()
    yield databases
    if MYSQL_PROBLEM is None:
        databases.drop_all()


BACKENDS = [
    "sqlite",
    pytest.param("mysql", marks=pytest.mark.skipif(MYSQL_PROBLEM is not None, reason="MariaDB not reachable")),
]


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def new_database_url(
    backend: str, tmp_path_factory: pytest.TempPathFactory, mysql_databases: MySQLDatabases
) -> Callable[[str], str]:
    """A factory of empty databases of the current backend."""

    def make(label: str) -> str:
        if backend == "sqlite":
            return f"sqlite:///{tmp_path_factory.mktemp(label) / 'agno.db'}"
        return mysql_databases.create(label)

    return make


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_settings(database_url: str, state_dir: Path, **overrides: Any) -> Settings:
    base = Settings(
        database_url=database_url,
        state_dir=str(state_dir),
        jwt_secret=TEST_SECRET,
        offline_delay_ms=2,
        log_level="warning",
        cancel_grace_seconds=5,
    )
    return replace(base, **overrides)


class OnLoopbackPort:
    """A server listening on 127.0.0.1:`port`, with the URLs the test clients connect to."""

    port: int

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def http_url(self) -> str:
        return f"{self.base_url}/graphql"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/graphql"


@dataclass
class RunningServer(OnLoopbackPort):
    settings: Settings
    services: Services
    port: int
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def serve_in_thread(
    app: Any, name: str, lifespan: str = "on", **options: Any
) -> tuple[uvicorn.Server, threading.Thread, int]:
    """Serve an ASGI app with uvicorn on a free loopback port, in a thread with its own event loop."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan=lifespan, **options)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True, name=f"{name}-{port}")
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"{name} did not start")
        time.sleep(0.02)
    return server, thread, port


def start_server(settings: Settings, tracing: Tracing | None = None) -> RunningServer:
    """A real agno-graphql server on a free loopback port (traced with `tracing`, if given)."""
    services = build_services(settings, tracing)
    server, thread, port = serve_in_thread(create_app(settings, services), "agno-graphql", **server_options(settings))
    return RunningServer(settings=settings, services=services, port=port, server=server, thread=thread)


@pytest.fixture(scope="session")
def server(new_database_url: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """The suite's shared server (one per backend)."""
    running = start_server(server_settings(new_database_url("main"), tmp_path_factory.mktemp("state")))
    yield running
    running.stop()


@contextmanager
def serving_with(
    new_database_url: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory, label: str, **overrides: Any
) -> Iterator[RunningServer]:
    """A server of its own, on a new database of the current backend, with some settings changed."""
    running = start_server(server_settings(new_database_url(label), tmp_path_factory.mktemp(label), **overrides))
    try:
        yield running
    finally:
        running.stop()


REDIS_URL = "redis://127.0.0.1:6379/0"


@contextmanager
def two_instances_over_redis(
    database_url: str, tmp_path_factory: pytest.TempPathFactory, label: str, **overrides: Any
) -> Iterator[tuple[RunningServer, RunningServer]]:
    """Two in-thread servers with state folders of their own, sharing the database and a fresh Redis prefix."""
    shared = {"redis_url": REDIS_URL, "redis_prefix": f"agql-test-{uuid.uuid4().hex[:8]}", **overrides}
    a = start_server(server_settings(database_url, tmp_path_factory.mktemp(f"{label}-a"), **shared))
    try:
        b = start_server(server_settings(database_url, tmp_path_factory.mktemp(f"{label}-b"), **shared))
        try:
            yield a, b
        finally:
            b.stop()
    finally:
        a.stop()


def make_token(user_id: str, secret: str = TEST_SECRET, **claims: Any) -> str:
    now = int(time.time())
    payload = {"sub": user_id, "iat": now, "exp": now + 3600, **claims}
    return jwt.encode(payload, secret, algorithm="HS256")


@pytest.fixture
def user_id() -> str:
    """A fresh user per test, so tests on the shared server never see each other's sessions."""
    return f"user-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def token(user_id: str) -> str:
    """A valid token of the test's user (`user_id`), signed with the servers' secret."""
    return make_token(user_id)


@pytest.fixture(scope="module")
def stub() -> Iterator[OpenAIStub]:
    """The loopback OpenAI-compatible stub, one per test module that asks for it."""
    from tests.openai_stub import serve_stub  # here, not at the top: the stub's module serves through this one

    with serve_stub() as running:
        yield running

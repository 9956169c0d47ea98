"""A private MariaDB server for tests that take the database away: its own data directory and loopback port,
run as a child process, so a test can stop it (cleanly or with kill -9) and start it again on the same
data and port while an agno-graphql server keeps pointing at it."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pymysql

from tests.conftest import free_port

MARIADB_INSTALL_DB = shutil.which("mariadb-install-db") or "/usr/bin/mariadb-install-db"
MARIADBD = shutil.which("mariadbd") or "/usr/sbin/mariadbd"
READY_SECONDS = 30.0
STOP_SECONDS = 30.0
# Small and quick: no binary log, a small buffer pool and redo log, no DNS, nothing flushed at shutdown.
SERVER_OPTIONS = (
    "--no-defaults",
    "--user=root",
    "--bind-address=127.0.0.1",
    "--skip-name-resolve",
    "--skip-log-bin",
    "--innodb-buffer-pool-size=16M",
    "--innodb-log-file-size=8M",
    "--innodb-fast-shutdown=2",
    "--max-connections=200",
)


def available() -> str | None:
    """None when a private MariaDB can run here, or why not."""
    for program in (MARIADB_INSTALL_DB, MARIADBD):
        if not Path(program).exists():
            return f"{program} is not installed"
    return None


class MariaDbServer:
    """One private MariaDB: `start()`, `stop()` and `kill()` keep the data directory and the port."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.datadir = folder / "data"
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self._installed = False

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def url(self, database: str) -> str:
        return f"mysql+pymysql://root@127.0.0.1:{self.port}/{database}"

    def install(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                MARIADB_INSTALL_DB,
                "--no-defaults",
                f"--datadir={self.datadir}",
                "--user=root",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                "--skip-name-resolve",
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
        self._installed = True

    def start(self) -> None:
        """Start the server and wait (bounded) until it answers."""
        if not self._installed:
            self.install()
        assert not self.running, "already running"
        log = (self.folder / "mariadbd.log").open("ab")
        self.process = subprocess.Popen(
            [
                MARIADBD,
                *SERVER_OPTIONS,
                f"--datadir={self.datadir}",
                f"--port={self.port}",
                f"--socket={self.folder / 'mariadbd.sock'}",
                f"--pid-file={self.folder / 'mariadbd.pid'}",
                f"--log-error={self.folder / 'mariadbd.err'}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + READY_SECONDS
        while not self._answers():
            if self.process.poll() is not None:
                raise RuntimeError(f"mariadbd exited with {self.process.returncode}; see {self.folder}/mariadbd.err")
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"mariadbd did not answer within {READY_SECONDS} s")
            time.sleep(0.05)

    def stop(self) -> None:
        """A clean shutdown (SIGTERM), waited for."""
        self._signal(signal.SIGTERM)

    def kill(self) -> None:
        """A crash (SIGKILL): InnoDB recovers at the next start."""
        self._signal(signal.SIGKILL)

    def _signal(self, signum: int) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signum)
            try:
                self.process.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=STOP_SECONDS)
        self.process = None

    def _answers(self) -> bool:
        try:
            conn = pymysql.connect(host="127.0.0.1", port=self.port, user="root", connect_timeout=1)
        except pymysql.err.OperationalError:
            return False
        conn.close()
        return True

    def connect(self, database: str | None = None) -> pymysql.connections.Connection:
        return pymysql.connect(host="127.0.0.1", port=self.port, user="root", database=database, autocommit=True)

    def create_database(self, name: str) -> str:
        """A new empty database; its SQLAlchemy URL."""
        conn = self.connect()
        with conn.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        conn.close()
        return self.url(name)


@contextmanager
def private_mariadb(folder: Path) -> Iterator[MariaDbServer]:
    """A private MariaDB in `folder`, installed and started; always stopped at the end."""
    server = MariaDbServer(folder)
    server.start()
    try:
        yield server
    finally:
        server.kill()

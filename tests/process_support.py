"""`agno-graphql serve` as a real process, for tests of the command, of several instances, of SIGTERM."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import TEST_SECRET, OnLoopbackPort, free_port

CLI = Path(sys.executable).with_name("agno-graphql")
SERVE_START_ATTEMPTS = 300  # x 0.1 s


def cli_env(state_dir: Path, database_url: str, **settings: str) -> dict[str, str]:
    """The environment of a user's shell: no AGNO_GRAPHQL_* but the ones given."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("AGNO_GRAPHQL_")}
    env["AGNO_GRAPHQL_STATE_DIR"] = str(state_dir)
    env["AGNO_GRAPHQL_DATABASE_URL"] = database_url
    env["AGNO_GRAPHQL_LOG_LEVEL"] = "warning"
    env.update({f"AGNO_GRAPHQL_{name.upper()}": value for name, value in settings.items()})
    return env


def serve_env(folder: Path, database_url: str, **settings: str) -> dict[str, str]:
    """The environment of a test's `serve` process: its state under `folder`, the tokens of `make_token` valid."""
    return cli_env(folder / "state", database_url, jwt_secret=TEST_SECRET, **settings)


@dataclass
class ServedProcess(OnLoopbackPort):
    """A running `serve`; has the URLs the test clients need, like an in-thread server."""

    process: subprocess.Popen[bytes]
    port: int
    stdout_file: Path
    stderr_file: Path

    def printed(self) -> str:
        return self.stdout_file.read_text()

    def wait_until_healthy(self) -> None:
        for _ in range(SERVE_START_ATTEMPTS):
            if self.process.poll() is not None:
                pytest.fail(f"serve exited with {self.process.returncode}: {self.stderr_file.read_text()}")
            try:
                if httpx.get(f"{self.base_url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        pytest.fail("serve did not answer /healthz")

    def kill(self) -> None:
        """SIGKILL, as a crash ends a server: nothing of it runs on. Returns once the process is gone."""
        self.process.kill()
        self.process.wait(timeout=15)

    def stop(self, timeout: float = 15) -> int:
        """SIGTERM, as a process manager stops it; killed only if it does not end in time. The exit code."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)
        return self.process.returncode


@contextmanager
def serving_process(folder: Path, env: dict[str, str], args: Sequence[str] = ()) -> Iterator[ServedProcess]:
    """`agno-graphql serve` on a free port, healthy; stopped afterwards."""
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    stdout_file, stderr_file = folder / "stdout.txt", folder / "stderr.txt"
    with stdout_file.open("wb") as stdout, stderr_file.open("wb") as stderr:
        process = subprocess.Popen(
            [str(CLI), "serve", "--host", "127.0.0.1", "--port", str(port), *args],
            env=env,
            cwd=folder,
            stdout=stdout,
            stderr=stderr,
        )
    served = ServedProcess(process, port, stdout_file, stderr_file)
    try:
        served.wait_until_healthy()
        yield served
    finally:
        served.stop()

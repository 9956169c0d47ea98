"""The `agno-graphql` command, run as a user runs it: a real process, real settings from the environment."""

from __future__ import annotations

import json
import re
import stat
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import jwt
import pytest

from tests.auth_support import VIEWER
from tests.client import bearer, execute
from tests.conftest import TEST_SECRET, RunningServer, free_port, make_token
from tests.process_support import CLI, cli_env, serving_process

SCHEMA_FILE = Path(__file__).resolve().parents[1] / "schema.graphql"
JWT_PATTERN = re.compile(r"eyJ[\w-]*\.[\w-]+\.[\w-]+")
COMMAND_TIMEOUT_SECONDS = 60


def unused_database_url(folder: Path) -> str:
    """For commands that never open the database (token, export-schema, startup errors)."""
    return f"sqlite:///{folder / 'never-opened.db'}"


def run_cli(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the command to its end (killed if it outlives the timeout); cwd has no .env file."""
    return subprocess.run(
        [str(CLI), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_SECONDS
    )


async def test_token_prints_one_token_that_a_server_with_the_same_secret_accepts(
    tmp_path: Path, server: RunningServer, user_id: str
) -> None:
    env = cli_env(tmp_path / "state", unused_database_url(tmp_path), jwt_secret=TEST_SECRET)
    before = int(time.time())
    result = run_cli(["token", user_id, "--ttl", "60"], env, tmp_path)
    after = int(time.time())

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    claims = jwt.decode(lines[0], TEST_SECRET, algorithms=["HS256"])
    assert claims["sub"] == user_id
    assert before + 60 <= claims["exp"] <= after + 60
    assert await execute(server, lines[0], VIEWER) == {"viewer": {"userId": user_id}}


def test_token_without_secret_keeps_one_in_the_state_dir(tmp_path: Path, user_id: str) -> None:
    state_dir = tmp_path / "state"
    env = cli_env(state_dir, unused_database_url(tmp_path))
    first = run_cli(["token", user_id], env, tmp_path)
    second = run_cli(["token", user_id], env, tmp_path)

    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    secret_file = state_dir / "jwt-secret"
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    secret = secret_file.read_text().strip()
    for result in (first, second):
        assert jwt.decode(result.stdout.strip(), secret, algorithms=["HS256"])["sub"] == user_id


def test_export_schema_prints_the_committed_schema(tmp_path: Path) -> None:
    result = run_cli(["export-schema"], cli_env(tmp_path / "state", unused_database_url(tmp_path)), tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == SCHEMA_FILE.read_text()


@contextmanager
def serving(tmp_path: Path, env: dict[str, str]) -> Iterator[tuple[str, str]]:
    """`agno-graphql serve` on a free port, healthy: (base URL, what it printed); stopped afterwards."""
    with serving_process(tmp_path, env) as served:
        yield served.base_url, served.printed()


def test_first_serve_creates_a_secret_and_prints_url_and_working_token(
    tmp_path: Path, new_database_url: Callable[[str], str], user_id: str
) -> None:
    state_dir = tmp_path / "state"
    with serving(tmp_path, cli_env(state_dir, new_database_url("serve"))) as (base_url, printed):
        secret_file = state_dir / "jwt-secret"
        assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
        assert f"{base_url}/graphql" in printed
        assert "Generated a JWT secret" in printed
        tokens = JWT_PATTERN.findall(printed)
        assert tokens, printed
        own_token = jwt.encode({"sub": user_id}, secret_file.read_text().strip(), algorithm="HS256")
        with httpx.Client(base_url=base_url, timeout=30) as client:
            printed_viewer = client.post("/graphql", json={"query": VIEWER}, headers=bearer(tokens[0])).json()
            own_viewer = client.post("/graphql", json={"query": VIEWER}, headers=bearer(own_token)).json()
        assert "errors" not in printed_viewer and printed_viewer["data"]["viewer"]["userId"]
        assert own_viewer == {"data": {"viewer": {"userId": user_id}}}


def test_serve_with_a_configured_secret_prints_no_token(tmp_path: Path) -> None:
    """A real secret's tokens must not land in logs: only the generated development secret gets one printed."""
    env = cli_env(tmp_path / "state", f"sqlite:///{tmp_path / 'serve.db'}", jwt_secret=TEST_SECRET)
    with serving(tmp_path, env) as (base_url, printed):
        assert f"{base_url}/graphql" in printed
        assert JWT_PATTERN.findall(printed) == []
        assert not (tmp_path / "state" / "jwt-secret").exists()


def _broken_agents_module(folder: Path) -> dict[str, str]:
    (folder / "broken_agents_module.py").write_text('raise RuntimeError("this module fails on import")\n')
    return {"PYTHONPATH": str(folder)}


# case: (extra settings, extra environment, extra serve arguments, text the message must contain)
StartupCase = Callable[[Path], tuple[dict[str, str], dict[str, str], list[str], str]]
STARTUP_ERRORS: dict[str, StartupCase] = {
    "key file missing": lambda tmp: (
        {"jwt_public_key_file": str(tmp / "missing.pem")},
        {},
        [],
        "AGNO_GRAPHQL_JWT_PUBLIC_KEY_FILE",
    ),
    "key file unreadable": lambda tmp: ({"jwt_public_key_file": str(tmp)}, {}, [], "AGNO_GRAPHQL_JWT_PUBLIC_KEY_FILE"),
    "agents module missing": lambda tmp: (
        {"agents": "no_such_package_for_agno_graphql.agents:AGENTS"},
        {},
        [],
        "AGNO_GRAPHQL_AGENTS",
    ),
    "agents module failing on import": lambda tmp: (
        {"agents": "broken_agents_module:AGENTS"},
        _broken_agents_module(tmp),
        [],
        "AGNO_GRAPHQL_AGENTS",
    ),
    "more than one worker without redis": lambda tmp: ({}, {}, ["--workers", "2"], "AGNO_GRAPHQL_REDIS_URL"),
    "unreachable redis": lambda tmp: (
        {"redis_url": f"redis://127.0.0.1:{free_port()}/0"},
        {},
        [],
        "cannot reach Redis",
    ),
    "not a redis url": lambda tmp: ({"redis_url": "http://127.0.0.1:6379"}, {}, [], "AGNO_GRAPHQL_REDIS_URL"),
}


def _assert_clear_startup_error(result: subprocess.CompletedProcess[str], expected: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("agno-graphql: "), result.stderr
    assert expected in result.stderr


@pytest.mark.parametrize("case", list(STARTUP_ERRORS))
def test_bad_setting_is_a_clear_startup_error(tmp_path: Path, case: str) -> None:
    settings, extra_env, args, expected = STARTUP_ERRORS[case](tmp_path)
    env = {**cli_env(tmp_path / "state", unused_database_url(tmp_path), **settings), **extra_env}
    result = run_cli(["serve", "--port", str(free_port()), *args], env, tmp_path)
    _assert_clear_startup_error(result, expected)


def test_malformed_database_url_is_a_clear_startup_error(tmp_path: Path) -> None:
    result = run_cli(["serve", "--port", str(free_port())], cli_env(tmp_path / "state", "notaurl"), tmp_path)
    _assert_clear_startup_error(result, "notaurl")


ROUTINE_LINES = ("Started server process", "Uvicorn running on", "Cancellation manager set to", '"POST /graphql')


def serve_and_run(tmp_path: Path, database_url: str, log_level: str) -> str:
    """Start `serve` at `log_level`, answer a run and a query, stop it: all it wrote, stdout then stderr."""
    env = cli_env(tmp_path / "state", database_url, jwt_secret=TEST_SECRET, log_level=log_level)
    with serving_process(tmp_path, env) as served:
        token = make_token("log-reader")
        with httpx.Client(timeout=60) as client:
            assert client.post(served.http_url, json={"query": VIEWER}, headers=bearer(token)).status_code == 200
        answered = httpx.post(
            served.http_url,
            json={"query": 'subscription { runAgent(input: {agentId: "assistant", message: "hi"}) { __typename } }'},
            headers={**bearer(token), "Accept": "text/event-stream"},
            timeout=60,
        )
        assert "RunCompleted" in answered.text
    return served.printed() + served.stderr_file.read_text()


def test_serve_prints_what_a_person_needs_and_no_routine_lines(
    tmp_path: Path, new_database_url: Callable[[str], str]
) -> None:
    """At the default level: the URLs, the database in use (its password hidden), real warnings only."""
    database_url = new_database_url("banner")
    printed = serve_and_run(tmp_path, database_url, "info")
    assert "GraphQL and GraphiQL: http://127.0.0.1:" in printed and "Chat page:" in printed
    database_line = next(line for line in printed.splitlines() if line.startswith("Database: "))
    assert database_line.split(" ")[1].split("@")[-1] == database_url.split("@")[-1]
    assert not [line for line in printed.splitlines() if any(routine in line for routine in ROUTINE_LINES)], printed
    assert not re.search(r"^(INFO|DEBUG)", printed, re.MULTILINE), printed


def test_routine_lines_are_debug_lines(tmp_path: Path) -> None:
    printed = serve_and_run(tmp_path, f"sqlite:///{tmp_path / 'debug.db'}", "debug")
    for routine in ("Started server process", "Cancellation manager set to"):
        line = next(line for line in printed.splitlines() if routine in line)
        assert line.startswith("DEBUG"), line


def test_json_logs_are_one_object_a_line_with_the_request_and_user(tmp_path: Path) -> None:
    """AGNO_GRAPHQL_LOG_FORMAT=json: uvicorn's and Agno's lines too; the banner stays plain text on stdout."""
    env = cli_env(tmp_path / "state", f"sqlite:///{tmp_path / 'json.db'}", jwt_secret=TEST_SECRET)
    env.update({"AGNO_GRAPHQL_LOG_FORMAT": "json", "AGNO_GRAPHQL_LOG_LEVEL": "debug"})
    with serving_process(tmp_path, env) as served, httpx.Client(timeout=60) as client:
        client.post(served.http_url, json={"query": VIEWER}, headers=bearer(make_token("json-reader")))
    lines = [line for line in served.stderr_file.read_text().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is JSON
    assert all({"time", "level", "message", "logger"} <= set(r) for r in records), records[:3]
    assert all(r["level"] == r["level"].lower() and "T" in r["time"] for r in records)
    assert any(r["logger"] == "agno" for r in records) and any(r["logger"].startswith("uvicorn") for r in records)
    access = next(r for r in records if r["logger"] == "uvicorn.access" and "POST /graphql" in r["message"])
    assert access["userId"] == "json-reader" and len(access["requestId"]) == 16

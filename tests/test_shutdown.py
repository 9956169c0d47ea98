"""SIGTERM during runs: the server takes no new runs, lets running ones finish within the grace period,
cancels the rest and waits until Agno has stored them, so no run is lost or left unfinished."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.process_support import serve_env, serving_process
from tests.run_support import LONG_MESSAGE, runs_as_stored, start_run

FINAL = {"COMPLETED", "CANCELLED", "ERROR"}


async def test_sigterm_during_runs_leaves_every_run_stored_with_a_final_status(
    new_database_url: Callable[[str], str], tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, token: str
) -> None:
    database_url = new_database_url("shutdown")
    env = serve_env(tmp_path, database_url, offline_delay_ms="40", shutdown_grace_seconds="1", max_runs_per_user="10")
    with serving_process(tmp_path, env) as served:
        long_runs = await asyncio.gather(*(start_run(served, token, None, seen=2) for _ in range(3)))
        short_run = await start_run(served, token, None, seen=1, message="short")
        exit_code = await asyncio.to_thread(served.stop, 60)
    # uvicorn shuts down gracefully, then re-raises the signal it caught: the process ends "by SIGTERM".
    assert exit_code in (0, -signal.SIGTERM), served.stderr_file.read_text()

    run_ids = [events[0]["runId"] for events in [*long_runs, short_run]]
    stored = await runs_as_stored(database_url, tmp_path_factory.mktemp("reader"), token, run_ids)

    missing = {run_id: run for run_id, run in stored.items() if run is None or run["status"] not in FINAL}
    assert not missing, (missing, served.stderr_file.read_text()[-3000:])
    assert stored[short_run[0]["runId"]]["status"] == "COMPLETED"
    for events in long_runs:
        run = stored[events[0]["runId"]]
        # A run cut short by the shutdown keeps what it had said.
        assert run["status"] == "CANCELLED" and f"You said: {LONG_MESSAGE}".startswith(run["content"])

"""The benchmark harness, small: every scenario runs end to end against real servers and MariaDB, without errors.

This keeps `make bench` from rotting; it asserts nothing about speed (that is the full run's job).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import MYSQL_PROBLEM, MySQLDatabases

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(MYSQL_PROBLEM is not None, reason="the benchmark runs on MariaDB, not reachable")


@pytest.fixture(scope="module")
def small_report(mysql_databases: MySQLDatabases, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    database_url = mysql_databases.create("bench")
    out = tmp_path_factory.mktemp("bench")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--small", "--database-url", database_url, "--out", str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, f"the small benchmark failed:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    report = json.loads((out / "latest.json").read_text())
    report["markdown"] = (out / "latest.md").read_text()
    return dict(report)


def test_list_sessions_is_measured_on_all_three_sides(small_report: dict[str, Any]) -> None:
    """And agno-graphql a second time, the page query sent by its hash alone (a persisted query)."""
    sides = small_report["B1"]["sides"]
    assert set(sides) == {"agno-graphql", "agno-graphql by hash", "agentos", "limit"}
    for side, result in sides.items():
        assert result["requests_per_second"] > 0, side
        assert result["errors"] == 0, (side, result["error_samples"])
        assert result["response_bytes"] > 100, side
    assert small_report["B1"]["ratios"]["vs_agentos_rps"] is not None
    assert small_report["B1"]["ratios"]["by_hash_vs_text_rps"] is not None


def test_history_is_measured_at_every_session_size(small_report: dict[str, Any]) -> None:
    by_runs = small_report["B2"]["by_runs"]
    assert set(by_runs) == {"10", "40"}
    for size, sides in by_runs.items():
        for side, result in sides.items():
            assert result["requests_per_second"] > 0, (size, side)
            assert result["errors"] == 0, (size, side, result["error_samples"])


def test_history_returns_a_full_page_at_every_session_size(small_report: dict[str, Any]) -> None:
    # The report keeps sizes, not nodes: a full page of the same messages weighs the same at every size
    # (only run indexes and cursors differ by a few digits), a short page (the 10-run session once held
    # ~30 messages) weighs far less.
    by_runs = small_report["B2"]["by_runs"]
    for side in ("agno-graphql", "limit"):
        sizes = [sides[side]["response_bytes"] for sides in by_runs.values()]
        assert max(sizes) - min(sizes) < 0.02 * max(sizes), (side, sizes)


def test_every_stream_delivers_every_delta(small_report: dict[str, Any]) -> None:
    b3 = small_report["B3"]
    assert b3["errors"] == {"agno-graphql": 0, "agentos": 0, "in-process": 0}, b3["error_samples"]
    for side in ("agno-graphql", "agentos", "in-process", "in-process-content-only"):
        assert b3["sides"][side]["runs"] > 0, side
        assert b3["sides"][side]["deltas_per_second"] > 0, side
        assert b3["sides"][side]["first_event_ms"] is not None, side


def test_stream_capacity_is_searched_on_every_side(small_report: dict[str, Any]) -> None:
    """Against the paced model server in its own process: agno-graphql on one and two workers, AgentOS, and Agno's
    own arun in-process on Agno's model and on ours. Which level passes is the full run's finding; here every level
    streams without errors."""
    b4 = small_report["B4"]
    assert set(b4["sides"]) == {"agno-graphql", "agentos", "limit", "limit, our model", "agno-graphql x2"}
    for side, found in b4["sides"].items():
        assert found["levels"], side
        for level in found["levels"]:
            assert level["errors"] == 0, (side, level)
            assert level["lateness_p99_ms"] is not None and level["start_p99_ms"] is not None, (side, level)
            assert level["cpu_us_per_delta"] and level["cpu_us_per_delta"] > 0, (side, level)
            assert level["model_server_p99_ms"] is not None, (side, level)  # the model server's own pace, kept
        assert [level["streams"] for level in found["levels"]][:2] == [2, 4] or not found["levels"][0]["passed"]
        opened = found["open_subscriptions"]
        assert opened["streams"] == 20 and opened["errors"] == 0, (side, opened["error_samples"])
        assert opened["peak_rss_mib"] >= opened["baseline_rss_mib"] > 0, side
        assert 0 < opened["most_open_at_once"] <= 20, side  # counted by the model server
        if found["capacity"]:
            at = found["at_capacity"]
            assert at["streams"] == found["capacity"] and at["passed"], side
    assert "### B4 stream capacity" in small_report["markdown"]


def test_the_report_names_the_machine_and_every_scenario(small_report: dict[str, Any]) -> None:
    machine = small_report["machine"]
    assert machine["cores"] and machine["mariadb"] and machine["versions"]["agno"]
    for heading in ("### B1", "### B2", "### B3", "### B4"):
        assert heading in small_report["markdown"]

"""The soak, small: half a minute of mixed traffic on two instances over MariaDB and Redis, then every check.

This keeps `make soak` from rotting. It asserts what the soak checks (runs stored once and final, no message
lost, streams gap-free, nothing held once idle); the resource-growth checks need the long run to mean much.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import MYSQL_BASE_URL, MYSQL_PROBLEM

REPO = Path(__file__).resolve().parent.parent
REDIS_URL = "redis://127.0.0.1:6379/0"
GROWTH_CHECKS = ("memory did not grow", "file descriptors did not grow")

pytestmark = pytest.mark.skipif(MYSQL_PROBLEM is not None, reason="the soak runs on MariaDB, not reachable")


@pytest.fixture(scope="module")
def small_soak(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("soak") / "report.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, "-m", "bench.soak", "--minutes", "0.5", "--streams", "20", "--sample-seconds", "2"]
    command += ["--database-url", MYSQL_BASE_URL, "--redis-url", REDIS_URL, "--out", str(out)]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert out.exists(), f"the soak did not report:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    report = dict(json.loads(out.read_text()))
    report["returncode"], report["printed"] = done.returncode, done.stdout
    return report


def test_every_kind_of_traffic_ran(small_soak: dict[str, Any]) -> None:
    figures = small_soak["figures"]
    assert figures["runs_started"] > 20
    assert figures["runs_resumed"] > 0 and figures["runs_dropped_with_cancel"] > 0 and figures["sockets_cut"] > 0
    assert figures["queries"] > 0 and figures["mutations"] > 0
    assert all(row["samples"] > 3 and row["websockets_peak"] > 0 for row in small_soak["servers"])


def test_every_check_passes_and_the_exit_code_says_so(small_soak: dict[str, Any]) -> None:
    checks = small_soak["checks"]
    failed = [(name, detail) for name, ok, detail in checks if not ok and not name.endswith(GROWTH_CHECKS)]
    assert not failed, small_soak["printed"]
    assert small_soak["returncode"] == (0 if all(ok for _, ok, _ in checks) else 1)


def test_the_table_names_every_check(small_soak: dict[str, Any]) -> None:
    printed = small_soak["printed"]
    for name in ("every started run stored", "no session lost a message", "every event stream gap-free"):
        assert name in printed
    assert all(f"server 1: {check}" in printed for check in GROWTH_CHECKS)

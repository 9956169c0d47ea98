"""B4's capacity search: the largest number of concurrent streams a side carries at a real model's pace.

A level passes when p99 lateness stays under the limit, nothing fails, and the streams end within the slack of
the model's own duration (p99 of stream time). Levels double from `start` until one fails, then bisect between the
last that passed and the first that failed. Each level is measured on the process that serves it: its CPU over
the level (per delta received) and its resident memory (peak minus the baseline before the level, per stream).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psutil

Level = Callable[[int], dict[str, Any]]
# The load core's use (the model server and the load generator) above which a level measures the setup, not the
# side. Not the model server's own lateness: it also sends late when the side reads too slowly (its writes wait for
# the reader), which is the side's overload, not the setup's.
SETUP_BUSY = 0.85
SETUP_BOUND = "setup-bound"


@dataclass(frozen=True)
class CapacityConfig:
    deltas: int = 200
    delay_ms: int = 20
    start: int = 10
    max_streams: int = 640
    resolution: float = 0.1  # bisect until the bracket is within this fraction of its lower end
    ramp_seconds: float = 4.0  # slots start spread over this long: one run length, so starts are steady
    measure_seconds: float = 12.0  # three generations of runs, after the ramp
    lateness_p99_ms: float = 50.0
    stream_slack: float = 0.10

    @property
    def model_seconds(self) -> float:
        return self.deltas * self.delay_ms / 1000


def tree_rss(process: psutil.Process) -> int:
    """Resident memory of a process and its children (uvicorn's workers)."""
    total = 0
    for p in [process, *process.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total


def tree_cpu(process: psutil.Process) -> float:
    total = 0.0
    for p in [process, *process.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            times = p.cpu_times()
            total += times.user + times.system
    return total


def measured(process: psutil.Process, level: Level, streams: int) -> dict[str, Any]:
    """`level(streams)` with the serving process's CPU and memory around it."""
    baseline = tree_rss(process)
    peak = [baseline]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], tree_rss(process))
            stop.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    cpu_before, wall_before = tree_cpu(process), time.time()
    sampler.start()
    try:
        result = level(streams)
    finally:
        stop.set()
        sampler.join()
    cpu = tree_cpu(process) - cpu_before
    result["server_cpu_seconds"] = cpu
    result["server_cpu_busy"] = cpu / max(1e-9, time.time() - wall_before)
    result["cpu_us_per_delta"] = cpu * 1e6 / result["deltas"] if result["deltas"] else None
    result["baseline_rss_mib"] = baseline / 2**20
    result["peak_rss_mib"] = peak[0] / 2**20
    result["memory_per_stream_kib"] = (peak[0] - baseline) / 1024 / streams
    return result


def verdict(result: dict[str, Any], config: CapacityConfig) -> tuple[bool, str]:
    """Whether a level passes, and if not, why."""
    busy = load_core_busy(result)
    if busy is not None and busy > SETUP_BUSY:
        return False, f"{SETUP_BOUND}: the load core {busy:.0%} busy"
    if result["errors"]:
        return False, f"{result['errors']} errors"
    p99 = result["lateness_ms"]["p99"]
    if p99 is None or p99 >= config.lateness_p99_ms:
        return False, "no deltas" if p99 is None else f"p99 lateness {p99:.1f} ms"
    stream_p99 = result["stream_seconds"]["p99"]
    if stream_p99 is None or stream_p99 > config.model_seconds * (1 + config.stream_slack):
        return False, "no stream measured" if stream_p99 is None else f"p99 stream time {stream_p99:.2f} s"
    return True, "passed"


def search(
    name: str, process: psutil.Process, level: Level, config: CapacityConfig, log: Callable[[str], None]
) -> dict[str, Any]:
    """Double, then bisect; every level tried is kept, in the order tried."""
    levels: dict[int, dict[str, Any]] = {}

    def attempt(streams: int) -> bool:
        result = measured(process, level, streams)
        ok, why = verdict(result, config)
        result["passed"], result["why"] = ok, why
        levels[streams] = result
        log(
            f"B4 {name} {streams} streams: {why}; lateness p50 {_f(result['lateness_ms']['p50'])} / p99 "
            f"{_f(result['lateness_ms']['p99'])} ms, stream p99 {_f(result['stream_seconds']['p99'], 2)} s, "
            f"start p99 {_f(result['start_ms']['p99'])} ms, {_f(result['cpu_us_per_delta'])} µs/delta"
        )
        return ok

    passed, failed = 0, None
    streams = config.start
    while streams <= config.max_streams:
        if not attempt(streams):
            failed = streams
            break
        passed, streams = streams, streams * 2
    if failed is not None:
        while failed - passed > max(1.0, passed * config.resolution) and not _setup_bound(levels[failed]):
            middle = (passed + failed) // 2
            if attempt(middle):
                passed = middle
            else:
                failed = middle
    return {
        "capacity": passed,
        # At least this: every level up to max_streams passed, or the level above was bound by the setup.
        "capped": failed is None or _setup_bound(levels[failed]),
        "at_capacity": levels.get(passed),
        "levels": [{"streams": n, **summary_of(r)} for n, r in levels.items()],
    }


def _setup_bound(result: dict[str, Any]) -> bool:
    return str(result["why"]).startswith(SETUP_BOUND)


def summary_of(result: dict[str, Any]) -> dict[str, Any]:
    """A level's line in the report."""
    return {
        "passed": result["passed"],
        "why": result["why"],
        "lateness_p50_ms": result["lateness_ms"]["p50"],
        "lateness_p99_ms": result["lateness_ms"]["p99"],
        "stream_p99_s": result["stream_seconds"]["p99"],
        "start_p50_ms": result["start_ms"]["p50"],
        "start_p99_ms": result["start_ms"]["p99"],
        "cpu_us_per_delta": result["cpu_us_per_delta"],
        "memory_per_stream_kib": result["memory_per_stream_kib"],
        "errors": result["errors"],
        "error_samples": result["error_samples"][:3],
        "model_server_p99_ms": (result.get("model_server") or {}).get("lateness_ms", {}).get("p99"),
        "load_core_busy": load_core_busy(result),
    }


def _f(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def load_core_busy(result: dict[str, Any]) -> float | None:
    """How much of the load core the model server and the load generator used over the level (1.0 = all of it)."""
    model = result.get("model_server") or {}
    seconds = model.get("seconds") or result.get("seconds")
    if not seconds:
        return None
    cpu = float(model.get("cpu_seconds") or 0) + float(result.get("load_generator_cpu_seconds") or 0)
    return cpu / seconds

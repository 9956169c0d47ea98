"""One level of B4: N concurrent streams held steady, each slot starting its next run when the last one ends.

Slot k starts at ramp × k / N, so once the ramp is over every slot is streaming and runs start at a steady rate
(N per run length), as in a chat service with N conversations answering at any moment. Only what falls in the
measurement window after the ramp counts for lateness, start cost and stream time; errors count everywhere.

The model server (bench/paced_model.py) stamps every chunk with the time it was due, so for each delta:
- lateness = received − due (what the reader waits beyond the model's own pace),
- the first chunk's due time − the moment the run was asked for = the cost of starting a run (the model
  server's clock for a run starts when the request reaches it),
- a stream's time = its last delta received − asked for, beside the model's own duration.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from bench.stats import summary

COMPLETED = "completed"


class RunMarks:
    """What one run delivered: its stamped deltas, as they arrive."""

    def __init__(self, window: tuple[float, float], lateness_ms: list[float]) -> None:
        self.asked = time.time()
        self.first_due: float | None = None
        self.last_received: float | None = None
        self.deltas = 0
        self._window = window
        self._lateness = lateness_ms
        self.unstamped = 0

    def on_text(self, text: str, received: float) -> None:
        for stamp in text.split():
            try:
                due = float(stamp)
            except ValueError:
                self.unstamped += 1
                continue
            self.deltas += 1
            if self.first_due is None:
                self.first_due = due
            if self._window[0] <= due <= self._window[1]:
                self._lateness.append((received - due) * 1000)
        self.last_received = received


OneRun = Callable[[int, int, RunMarks], Awaitable[str]]
Prepare = Callable[[int], Awaitable[None]]


async def hold(
    streams: int,
    ramp_seconds: float,
    measure_seconds: float,
    deltas: int,
    one_run: OneRun,
    prepare: Prepare | None = None,
) -> dict[str, Any]:
    """Run `streams` slots: `prepare(k)` once (a socket to open), then `one_run(k, n, marks)` until the window
    ends; each returns COMPLETED or what went wrong."""
    lateness: list[float] = []
    start_ms: list[float] = []
    stream_seconds: list[float] = []
    errors: list[str] = []
    total = {"deltas": 0, "runs": 0}
    began = time.time()
    window = (began + ramp_seconds, began + ramp_seconds + measure_seconds)

    async def slot(k: int) -> None:
        try:
            if prepare is not None:
                await prepare(k)
        except Exception as exc:
            errors.append(f"prepare: {type(exc).__name__}: {exc}"[:300])
            return
        await asyncio.sleep(max(0.0, began + ramp_seconds * k / streams - time.time()))
        n = 0
        while time.time() < window[1]:
            marks = RunMarks(window, lateness)
            try:
                outcome = await one_run(k, n, marks)
            except Exception as exc:
                outcome = f"{type(exc).__name__}: {exc}"
            n += 1
            total["runs"] += 1
            total["deltas"] += marks.deltas
            if outcome != COMPLETED or marks.deltas != deltas or marks.unstamped:
                errors.append(f"{outcome}, {marks.deltas} of {deltas} deltas, {marks.unstamped} unstamped"[:300])
                continue
            if window[0] <= marks.asked < window[1] and marks.first_due and marks.last_received:
                start_ms.append((marks.first_due - marks.asked) * 1000)
                stream_seconds.append(marks.last_received - marks.asked)

    await asyncio.gather(*(slot(k) for k in range(streams)))
    return {
        "streams": streams,
        "runs": total["runs"],
        "deltas": total["deltas"],
        "measured_runs": len(stream_seconds),
        "lateness_ms": summary(lateness),
        "start_ms": summary(start_ms),
        "stream_seconds": summary(stream_seconds),
        "errors": len(errors),
        "error_samples": errors[:5],
        "seconds": time.time() - began,
    }

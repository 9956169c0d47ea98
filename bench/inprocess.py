"""The streaming limit: `agent.arun` in-process, no server: `python -m bench.inprocess < spec.json`.

The same agent and database as the servers. Measures each run from the call to its last delta,
with `stream_events=True` (what the servers stream) and with content only.

`python -m bench.inprocess serve`: B4's limit, one level per JSON line on stdin (bench/hold.py): N concurrent
`arun` streams of the same agent against the same model server, with no GraphQL, no socket and no database;
one JSON answer per line. `serve served`: the same on agno-graphql's model (bench.agents.served_agents).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from typing import Any

from agno.run.agent import RunEvent

from agno_graphql.db.database import Database
from bench.agents import bench_agents, served_agents
from bench.hold import COMPLETED, RunMarks, hold
from bench.load import _stream_result


async def _one(agent: Any, user_id: str, stream_events: bool) -> dict[str, Any]:
    marks: dict[str, float] = {}
    count = 0
    status = None
    started = time.time()
    async for event in agent.arun("go", user_id=user_id, stream=True, stream_events=stream_events):
        at = time.time()
        marks.setdefault("event", at)
        kind = getattr(event, "event", None)
        if kind == RunEvent.run_content.value and getattr(event, "content", None):
            count += 1
            marks.setdefault("delta", at)
            marks["last"] = at
        elif kind in {RunEvent.run_completed.value, RunEvent.run_error.value}:
            status = kind
    result = _stream_result(started, marks.get("event"), marks.get("delta"), marks.get("last", started), count)
    result["status"] = status
    return result


async def run(spec: dict[str, Any]) -> dict[str, Any]:
    db = Database(spec["database_url"])
    await db.ensure_ready()
    agent = next(a for a in bench_agents() if a.id == spec["agent"])
    agent.db = db.agno_db
    out: dict[str, Any] = {"events": [], "content_only": [], "errors": 0, "error_samples": []}
    for _n in range(int(spec["runs"])):
        for key, stream_events in (("events", True), ("content_only", False)):
            result = await _one(agent, spec.get("user_id", "bench"), stream_events)
            if result["deltas"] != spec["deltas"]:
                out["errors"] += 1
                out["error_samples"].append(f"{result['status']}, {result['deltas']} deltas")
            out[key].append(result)
    await db.dispose()
    return out


async def hold_level(agent: Any, spec: dict[str, Any]) -> dict[str, Any]:
    async def one_run(k: int, n: int, marks: RunMarks) -> str:
        outcome = "no terminal event"
        async for event in agent.arun("go", user_id=f"limit-{k}", stream=True, stream_events=True):
            kind = getattr(event, "event", None)
            if kind == RunEvent.run_content.value and getattr(event, "content", None):
                marks.on_text(event.content, time.time())
            elif kind == RunEvent.run_completed.value:
                outcome = COMPLETED
            elif kind == RunEvent.run_error.value:
                outcome = f"error: {getattr(event, 'content', '')}"
        return outcome

    ramp, measure, deltas = float(spec["ramp_seconds"]), float(spec["measure_seconds"]), int(spec["deltas"])
    return await hold(int(spec["streams"]), ramp, measure, deltas, one_run)


async def serve(served: bool = False) -> None:
    """One level per line; the agent is built once, with no database, as a process serving runs would."""
    agents = {a.id: a for a in (served_agents() if served else bench_agents())}
    loop = asyncio.get_running_loop()
    while line := await loop.run_in_executor(None, sys.stdin.readline):
        spec = json.loads(line)
        cpu_before = time.process_time()
        try:
            answer: dict[str, Any] = {"result": await hold_level(agents[spec["agent"]], spec)}
            answer["result"]["cpu_seconds"] = time.process_time() - cpu_before
        except Exception as exc:
            answer = {"failure": f"{type(exc).__name__}: {exc}"}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


def main() -> None:
    if sys.argv[1:2] == ["serve"]:
        with contextlib.suppress(ImportError):  # the servers run on uvloop (uvicorn picks it when installed)
            import uvloop

            uvloop.install()
        asyncio.run(serve(served=sys.argv[2:] == ["served"]))
        return
    spec = json.load(sys.stdin)
    cpu_before = time.process_time()
    result = asyncio.run(run(spec))
    result["cpu_seconds"] = time.process_time() - cpu_before
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()

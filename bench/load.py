"""The load generator, a process of its own: `python -m bench.load MODE < spec.json > result.json`.

Modes (or `serve`: many measurements, one JSON line each way):
  http      fixed concurrency over keep-alive connections for a duration, after a warm-up:
            requests/s, latency percentiles, errors (non-2xx, GraphQL errors, broken connections)
  ws-run    one `runAgent` subscription at a time over graphql-transport-ws: deltas/s, first event, first delta
  sse-run   one AgentOS run at a time over SSE: the same measures
  ws-hold   B4's level (bench/hold.py): N runAgent streams held steady over graphql-transport-ws, one socket per
            slot, each run in a new session; lateness of the model server's stamped deltas, start cost
  sse-hold  the same against AgentOS's run endpoint over SSE
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

import aiohttp

from bench.hold import COMPLETED, RunMarks, hold
from bench.stats import summary

RUN_DOCUMENT = (
    "subscription Run($input: RunAgentInput!) { runAgent(input: $input) { __typename "
    "... on RunContentDelta { delta } ... on RunFailed { message code } } }"
)
TERMINAL = {"RunCompleted", "RunFailed", "RunCancelled"}


def model_deltas(text: str) -> int:
    """How many of the benchmark model's deltas a delta holds: each ends with one space, and a server
    may send several as one message."""
    return text.count(" ")


def _has_graphql_errors(body: bytes) -> bool:
    return body.startswith(b'{"errors"') or b'"errors":' in body[:64]


async def http_load(spec: dict[str, Any]) -> dict[str, Any]:
    requests = spec["requests"]
    concurrency, duration, warmup = int(spec["concurrency"]), float(spec["duration"]), float(spec.get("warmup", 0))
    check_graphql = bool(spec.get("graphql"))
    latencies: list[float] = []
    errors: list[str] = []
    sizes: list[int] = []
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        start = time.perf_counter()
        measure_from = start + warmup
        stop_at = measure_from + duration

        async def worker(offset: int) -> None:
            i = offset
            while True:
                now = time.perf_counter()
                if now >= stop_at:
                    return
                request = requests[i % len(requests)]
                i += concurrency
                began = time.perf_counter()
                try:
                    async with session.request(
                        request["method"], request["url"], headers=request.get("headers"), data=request.get("body")
                    ) as response:
                        body = await response.read()
                        failed = response.status >= 400 or (check_graphql and _has_graphql_errors(body))
                        problem = f"HTTP {response.status}: {body[:200]!r}" if failed else None
                except Exception as exc:
                    body, problem = b"", f"{type(exc).__name__}: {exc}"
                ended = time.perf_counter()
                # Counted when it completes inside the window, whenever it began: a side slower than the
                # window still shows its throughput, and its queueing shows in the latency.
                if measure_from <= ended <= stop_at:
                    latencies.append(ended - began)
                    sizes.append(len(body))
                    if problem:
                        errors.append(problem)

        await asyncio.gather(*(worker(k) for k in range(concurrency)))
    return {
        "requests": len(latencies),
        "requests_per_second": len(latencies) / duration,
        "latency_ms": summary([x * 1000 for x in latencies]),
        "response_bytes": summary(sizes),
        "errors": len(errors),
        "error_samples": errors[:3],
    }


async def _ws_open(session: aiohttp.ClientSession, url: str, token: str) -> aiohttp.ClientWebSocketResponse:
    ws = await session.ws_connect(url, protocols=("graphql-transport-ws",), max_msg_size=0, heartbeat=None)
    await ws.send_str(json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}))
    ack = json.loads((await ws.receive(timeout=30)).data)
    if ack.get("type") != "connection_ack":
        raise RuntimeError(f"no connection_ack: {ack}")
    return ws


async def _ws_follow(ws: aiohttp.ClientWebSocketResponse, sub_id: str, variables: dict[str, Any], on_delta: Any) -> str:
    """Subscribe and read until the run ends; returns the terminal type (or an error description)."""
    terminal = "complete without terminal event"
    await ws.send_str(
        json.dumps({"id": sub_id, "type": "subscribe", "payload": {"query": RUN_DOCUMENT, "variables": variables}})
    )
    while True:
        message = await ws.receive(timeout=120)
        if message.type != aiohttp.WSMsgType.TEXT:
            return f"socket {message.type.name}"
        received = time.time()
        frame = json.loads(message.data)
        kind = frame.get("type")
        if kind == "next":
            if frame["payload"].get("errors"):
                return f"errors: {frame['payload']['errors']}"[:300]
            event = frame["payload"]["data"]["runAgent"]
            name = event["__typename"]
            if name == "RunContentDelta":
                on_delta(event["delta"], received)
            elif name == "RunStarted":
                on_delta(None, received)
            elif name in TERMINAL:
                terminal = name
        elif kind == "complete":
            return terminal
        elif kind == "error":
            return f"error: {frame.get('payload')}"[:300]
        elif kind == "ping":
            await ws.send_str(json.dumps({"type": "pong"}))


class _Marks:
    """When a stream's first event, first delta and last delta arrived, and how many deltas."""

    def __init__(self) -> None:
        self.first_event: float | None = None
        self.first_delta: float | None = None
        self.last: float | None = None
        self.count = 0

    def on_delta(self, delta: str | None, at: float) -> None:
        if self.first_event is None:
            self.first_event = at
        if delta is not None:
            self.count += model_deltas(delta)
            self.first_delta = self.first_delta or at
            self.last = at

    def result(self, started: float) -> dict[str, Any]:
        return _stream_result(started, self.first_event, self.first_delta, self.last or started, self.count)


def _stream_result(
    started: float, first_event: float | None, first_delta: float | None, last: float, deltas: int
) -> dict[str, Any]:
    return {
        "deltas": deltas,
        "first_event_ms": (first_event - started) * 1000 if first_event else None,
        "first_delta_ms": (first_delta - started) * 1000 if first_delta else None,
        "seconds": last - started,
        "deltas_per_second": deltas / (last - started) if last > started else 0.0,
    }


async def ws_runs(spec: dict[str, Any]) -> dict[str, Any]:
    results, errors = [], []
    async with aiohttp.ClientSession() as session:
        ws = await _ws_open(session, spec["url"], spec["token"])
        for n in range(int(spec["runs"])):
            marks = _Marks()
            started = time.time()
            variables = {"input": {"agentId": spec["agent"], "message": "go"}}
            terminal = await _ws_follow(ws, str(n), variables, marks.on_delta)
            if terminal != "RunCompleted" or marks.count != spec["deltas"]:
                errors.append(f"{terminal}, {marks.count} deltas")
            results.append(marks.result(started))
        await ws.close()
    return {"runs": results, "errors": len(errors), "error_samples": errors[:3]}


async def sse_runs(spec: dict[str, Any]) -> dict[str, Any]:
    results, errors = [], []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=300)) as session:
        for _n in range(int(spec["runs"])):
            marks: dict[str, float] = {}
            count = 0
            terminal = None
            started = time.time()
            form = {"message": "go", "stream": "true", "user_id": spec.get("user_id", "bench")}
            async with session.post(spec["url"], data=form) as response:
                if response.status != 200:
                    errors.append(f"HTTP {response.status}")
                    continue
                async for line in response.content:
                    if not line.startswith(b"data:"):
                        continue
                    at = time.time()
                    marks.setdefault("event", at)
                    event = json.loads(line[5:])
                    kind = event.get("event")
                    if kind == "RunContent" and event.get("content"):
                        count += model_deltas(event["content"])
                        marks.setdefault("delta", at)
                        marks["last"] = at
                    elif kind in {"RunCompleted", "RunError", "RunCancelled"}:
                        terminal = kind
            if terminal != "RunCompleted" or count != spec["deltas"]:
                errors.append(f"{terminal}, {count} deltas")
            results.append(
                _stream_result(started, marks.get("event"), marks.get("delta"), marks.get("last", started), count)
            )
    return {"runs": results, "errors": len(errors), "error_samples": errors[:3]}


async def ws_hold(spec: dict[str, Any]) -> dict[str, Any]:
    tokens: list[str] = spec["tokens"]
    streams = int(spec["streams"])
    sockets: dict[int, aiohttp.ClientWebSocketResponse] = {}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

        async def prepare(k: int) -> None:
            # Opened in waves of 50 across the ramp's first moments, so that connecting is not the load measured.
            await asyncio.sleep(0.02 * (k // 50))
            sockets[k] = await _ws_open(session, spec["url"], tokens[k % len(tokens)])

        async def one_run(k: int, n: int, marks: RunMarks) -> str:
            variables = {"input": {"agentId": spec["agent"], "message": "go"}}

            def on_delta(delta: str | None, at: float) -> None:
                if delta is not None:
                    marks.on_text(delta, at)

            terminal = await _ws_follow(sockets[k], str(n), variables, on_delta)
            return COMPLETED if terminal == "RunCompleted" else terminal

        try:
            return await hold(
                streams,
                float(spec["ramp_seconds"]),
                float(spec["measure_seconds"]),
                int(spec["deltas"]),
                one_run,
                prepare,
            )
        finally:
            await asyncio.gather(*(ws.close() for ws in sockets.values()), return_exceptions=True)


async def sse_hold(spec: dict[str, Any]) -> dict[str, Any]:
    users: list[str] = spec["users"]
    timeout = aiohttp.ClientTimeout(total=300)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=timeout) as session:

        async def one_run(k: int, n: int, marks: RunMarks) -> str:
            form = {"message": "go", "stream": "true", "user_id": users[k % len(users)]}
            terminal = "no terminal event"
            async with session.post(spec["url"], data=form) as response:
                if response.status != 200:
                    return f"HTTP {response.status}"
                async for line in response.content:
                    if not line.startswith(b"data:"):
                        continue
                    received = time.time()
                    event = json.loads(line[5:])
                    kind = event.get("event")
                    if kind == "RunContent" and event.get("content"):
                        marks.on_text(event["content"], received)
                    elif kind in {"RunCompleted", "RunError", "RunCancelled"}:
                        terminal = kind
            return COMPLETED if terminal == "RunCompleted" else terminal

        return await hold(
            int(spec["streams"]),
            float(spec["ramp_seconds"]),
            float(spec["measure_seconds"]),
            int(spec["deltas"]),
            one_run,
        )


MODES = {
    "http": http_load,
    "ws-run": ws_runs,
    "sse-run": sse_runs,
    "ws-hold": ws_hold,
    "sse-hold": sse_hold,
}


def _measure(mode: str, spec: dict[str, Any]) -> dict[str, Any]:
    cpu_before = time.process_time()
    result = asyncio.run(MODES[mode](spec))
    result["load_generator_cpu_seconds"] = time.process_time() - cpu_before
    return result


def main() -> None:
    """`MODE < spec.json`: one measurement. `serve`: one JSON request per line ({"mode", "spec"}), one
    JSON answer per line, so the harness starts the load generator once rather than per measurement."""
    mode = sys.argv[1]
    if mode != "serve":
        json.dump(_measure(mode, json.load(sys.stdin)), sys.stdout)
        return
    for line in sys.stdin:
        request = json.loads(line)
        try:
            answer: dict[str, Any] = {"result": _measure(request["mode"], request["spec"])}
        except Exception as exc:
            answer = {"failure": f"{type(exc).__name__}: {exc}"}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()

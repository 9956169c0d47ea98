"""Where a streamed chunk's CPU goes on Agno's side, layer by layer: `python -m bench.chunk_path [--chunks N]`.

The paced model server (bench/paced_model.py) runs in its own process on the other core and sends N chunks, with no
delay or `--delay-ms` apart to `--streams` readers at once (a model's pace: every chunk its own read); this process
reads them, pinned to its core, in seven ways, each its CPU time per chunk (median of rounds):
  raw        httpx's stream of the response and `json.loads` of each `data:` line (a lean reader's floor)
  lean       raw, each chunk then given to Agno's own chunk parse as light objects: what a lean reader in front of
             Agno's OpenAI model would cost
  sdk        the OpenAI SDK's `chat.completions.create(stream=True)`: its SSE decoder and chunk objects
  model      Agno's `OpenAILike.ainvoke_stream`: the SDK plus Agno's parse of each chunk
  ours       agno-graphql's `CompatibleModel.ainvoke_stream`: the same, plain content chunks cast lean
             (agno_graphql/compat/openai_parts.py)
  agent      Agno's `Agent.arun(stream=True)`: content only
  events     Agno's `Agent.arun(stream=True, stream_events=True)`: every event, what a server streams
The difference between two lines is what that layer costs; BENCHMARKS.md (B4) reads them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from agno.agent import Agent
from agno.models.message import Message
from agno.models.openai.like import OpenAILike
from openai import AsyncOpenAI

from agno_graphql.agents.models import CompatibleModel
from bench.harness import LOAD_CORE, SERVER_CORE, free_port, log
from bench.paced_model import model_name


async def _raw(url: str, model: str, client: httpx.AsyncClient) -> int:
    body = {"model": model, "stream": True, "messages": [{"role": "user", "content": "go"}]}
    count = 0
    async with client.stream("POST", f"{url}/chat/completions", json=body) as response:
        async for line in response.aiter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                chunk = json.loads(line[6:])
                if chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
                    count += 1
    return count


class _Fields:
    """A chunk's JSON with attribute access (what Agno's parse reads of the SDK's objects); absent fields are None."""

    __slots__ = ("_data",)

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    def __getattr__(self, name: str) -> Any:
        value = self._data.get(name)
        if isinstance(value, dict):
            return _Fields(value)
        if isinstance(value, list):
            return [_Fields(v) if isinstance(v, dict) else v for v in value]
        return value


async def _lean(url: str, model: OpenAILike, client: httpx.AsyncClient) -> int:
    body = {"model": model.id, "stream": True, "messages": [{"role": "user", "content": "go"}]}
    count = 0
    async with client.stream("POST", f"{url}/chat/completions", json=body) as response:
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            if model._parse_provider_response_delta(_Fields(json.loads(line[6:]))).content:  # type: ignore[arg-type]
                count += 1
    return count


async def _sdk(url: str, model: str, client: AsyncOpenAI) -> int:
    stream = await client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "go"}], stream=True, stream_options={"include_usage": True}
    )
    count = 0
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            count += 1
    return count


async def _model(model: OpenAILike) -> int:
    count = 0
    assistant = Message(role="assistant")
    async for response in model.ainvoke_stream([Message(role="user", content="go")], assistant):
        if response.content:
            count += 1
    return count


async def _agent(agent: Agent, events: bool) -> int:
    count = 0
    async for event in agent.arun("go", stream=True, stream_events=events):
        if getattr(event, "event", None) == "RunContent" and getattr(event, "content", None):
            count += 1
    return count


async def measure(url: str, chunks: int, rounds: int, streams: int = 1, delay_ms: int = 0) -> dict[str, Any]:
    name = model_name(chunks, delay_ms)
    model = OpenAILike(id=name, base_url=url, api_key="bench", timeout=120)
    ours = CompatibleModel(id=name, base_url=url, api_key="bench", timeout=120)
    agent = Agent(model=OpenAILike(id=name, base_url=url, api_key="bench", timeout=120), telemetry=False)
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    http = httpx.AsyncClient(timeout=120, limits=limits)
    sdk = AsyncOpenAI(base_url=url, api_key="bench", timeout=120)
    ways: dict[str, Callable[[], Awaitable[int]]] = {
        "raw": lambda: _raw(url, name, http),
        "lean": lambda: _lean(url, model, http),
        "sdk": lambda: _sdk(url, name, sdk),
        "model": lambda: _model(model),
        "ours": lambda: _model(ours),
        "agent": lambda: _agent(agent, events=False),
        "events": lambda: _agent(agent, events=True),
    }
    per_chunk: dict[str, list[float]] = {way: [] for way in ways}

    async def together(read: Callable[[], Awaitable[int]]) -> int:
        return sum(await asyncio.gather(*(read() for _ in range(streams))))

    for read in ways.values():
        await together(read)  # the first reads pay for connections and lazy imports
    for r in range(rounds):
        for way in list(ways) if r % 2 == 0 else list(reversed(ways)):
            before = time.process_time()
            got = await together(ways[way])
            if got != chunks * streams:
                raise RuntimeError(f"{way}: {got} chunks of {chunks * streams}")
            per_chunk[way].append((time.process_time() - before) * 1e6 / (chunks * streams))
    await http.aclose()
    await sdk.close()
    medians = {way: statistics.median(values) for way, values in per_chunk.items()}
    return {"chunks": chunks, "streams": streams, "delay_ms": delay_ms, "rounds": rounds, "us_per_chunk": medians}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.chunk_path", description=__doc__)
    parser.add_argument("--chunks", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--streams", type=int, default=1, help="readers at once, each its own stream")
    parser.add_argument("--delay-ms", type=int, default=0, help="the model's pace (0: as fast as it sends)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    port = free_port()
    pin = ["taskset", "-c", LOAD_CORE] if (os.cpu_count() or 1) > 1 else []
    server = subprocess.Popen([*pin, sys.executable, "-m", "bench.paced_model", str(port)])
    with contextlib.suppress(OSError):
        os.sched_setaffinity(0, {int(SERVER_CORE)})
    try:
        with contextlib.suppress(ImportError):  # as the servers run (uvicorn picks uvloop when installed)
            import uvloop

            uvloop.install()
        for _ in range(100):
            with contextlib.suppress(httpx.HTTPError):
                httpx.get(f"http://127.0.0.1:{port}/stats", timeout=1)
                break
            time.sleep(0.1)
        url = f"http://127.0.0.1:{port}/v1"
        result = asyncio.run(measure(url, args.chunks, args.rounds, args.streams, args.delay_ms))
    finally:
        server.terminate()
        server.wait(timeout=10)
    if args.json:
        print(json.dumps(result))
    else:
        for way, value in result["us_per_chunk"].items():
            log(f"{way:>7}: {value:7.1f} µs per chunk")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The agents every side of the benchmark serves: the same ids, the same models.

`assistant` and `calculator` use the offline demo model (they own the seeded sessions).
`calculator-two-step` uses `TwoStepCalculatorModel`, which answers "What is A * B + C?" with two tool
calls in sequence: its run is the template of every run of the history sessions (see `bench/seed.py`).
`stream-fast` uses `CountingModel`, which emits a fixed number of deltas with no delay (B3).
`stream-model` and `stream-model-slow` (with BENCH_MODEL_URL set) use Agno's `OpenAILike` (agno-graphql's
`CompatibleModel` in agno-graphql, see `served_agents`) against the paced model server of B4
(bench/paced_model.py), another process: BENCH_MODEL_DELTAS deltas BENCH_MODEL_DELAY_MS apart, and, for the memory
of many open subscriptions, 10 deltas 500 ms apart.
Sizes come from environment variables, so the server processes build the same agents.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

from agno.agent import Agent
from agno.metrics import MessageMetrics
from agno.models.base import Model
from agno.models.message import Message
from agno.models.openai.like import OpenAILike
from agno.models.response import ModelResponse

from agno_graphql.agents.offline import OfflineModel
from agno_graphql.agents.registry import builtin_agents
from agno_graphql.agents.tools import CALCULATOR_TOOLS
from bench.paced_model import model_name

TWO_STEP_AGENT = "calculator-two-step"
FAST_AGENT = "stream-fast"
ENV_FAST_DELTAS = "BENCH_FAST_DELTAS"
MODEL_AGENT = "stream-model"
MODEL_SLOW_AGENT = "stream-model-slow"
ENV_MODEL_URL = "BENCH_MODEL_URL"
ENV_MODEL_DELTAS = "BENCH_MODEL_DELTAS"
ENV_MODEL_DELAY_MS = "BENCH_MODEL_DELAY_MS"
SLOW_DELTAS, SLOW_DELAY_MS = 10, 500


@dataclass
class CountingModel(Model):
    """Emits `deltas` content deltas, `delay_seconds` apart (0: only yields to the loop)."""

    id: str = "counting"
    name: str | None = "Counting benchmark model"
    provider: str | None = "bench"
    deltas: int = 100
    delay_seconds: float = 0.0

    def _delta(self, i: int) -> ModelResponse:
        return ModelResponse(role="assistant", content=f"w{i} ")

    def _usage(self) -> ModelResponse:
        usage = MessageMetrics(input_tokens=1, output_tokens=self.deltas, total_tokens=self.deltas + 1)
        return ModelResponse(role="assistant", response_usage=usage)

    def invoke(self, messages: list[Message], tools: Any = None, **kwargs: Any) -> ModelResponse:  # type: ignore[override]
        return ModelResponse(role="assistant", content="".join(f"w{i} " for i in range(self.deltas)))

    async def ainvoke(self, messages: list[Message], tools: Any = None, **kwargs: Any) -> ModelResponse:  # type: ignore[override]
        return self.invoke(messages, tools)

    def invoke_stream(self, messages: list[Message], tools: Any = None, **kwargs: Any) -> Iterator[ModelResponse]:  # type: ignore[override]
        for i in range(self.deltas):
            if self.delay_seconds > 0:
                time.sleep(self.delay_seconds)
            yield self._delta(i)
        yield self._usage()

    async def ainvoke_stream(  # type: ignore[override]
        self, messages: list[Message], tools: Any = None, **kwargs: Any
    ) -> AsyncIterator[ModelResponse]:
        for i in range(self.deltas):
            # A real model's stream yields to the loop on every network read; so does this one.
            await asyncio.sleep(self.delay_seconds)
            yield self._delta(i)
        yield self._usage()

    def _parse_provider_response(self, response: Any, **kwargs: Any) -> ModelResponse:
        return response if isinstance(response, ModelResponse) else ModelResponse(content=str(response))

    def _parse_provider_response_delta(self, response: Any) -> ModelResponse:
        return self._parse_provider_response(response)


_TWO_STEP_QUESTION = re.compile(r"(-?\d+)\s*\*\s*(-?\d+)\s*\+\s*(-?\d+)")


def _number(value: Any) -> int | float:
    number = float(str(value))
    return int(number) if number.is_integer() else number


def _tool_call(name: str, a: int | float, b: int | float) -> ModelResponse:
    call = {
        "id": f"call_{uuid.uuid4().hex[:12]}",
        "type": "function",
        "function": {"name": name, "arguments": json.dumps({"a": a, "b": b})},
    }
    return ModelResponse(role="assistant", tool_calls=[call])


def two_step_reply(messages: list[Message]) -> ModelResponse:
    """multiply(A, B), then add(the product, C), then the answer: user, call, result, call, result, answer."""
    last_user = max((i for i, m in enumerate(messages) if m.role == "user"), default=None)
    if last_user is None:
        return ModelResponse(role="assistant", content="Ask me: what is A * B + C?")
    asked = messages[last_user].content
    results = [m.content for m in messages[last_user + 1 :] if m.role == "tool"]
    question = _TWO_STEP_QUESTION.search(asked if isinstance(asked, str) else "")
    if question is None:
        return ModelResponse(role="assistant", content=f"You said: {asked}")
    a, b, c = (_number(group) for group in question.groups())
    if not results:
        return _tool_call("multiply", a, b)
    if len(results) == 1:
        return _tool_call("add", _number(results[0]), c)
    return ModelResponse(role="assistant", content=f"The answer is {results[-1]}.")


@dataclass
class TwoStepCalculatorModel(Model):
    """A scripted model for the calculator tools: two tool calls in sequence, then the answer (`two_step_reply`)."""

    id: str = "two-step"
    name: str | None = "Two-step calculator benchmark model"
    provider: str | None = "bench"

    def _usage(self) -> ModelResponse:
        return ModelResponse(role="assistant", response_usage=MessageMetrics(input_tokens=1, total_tokens=1))

    def invoke(self, messages: list[Message], tools: Any = None, **kwargs: Any) -> ModelResponse:  # type: ignore[override]
        return two_step_reply(messages)

    async def ainvoke(self, messages: list[Message], tools: Any = None, **kwargs: Any) -> ModelResponse:  # type: ignore[override]
        return two_step_reply(messages)

    def invoke_stream(self, messages: list[Message], tools: Any = None, **kwargs: Any) -> Iterator[ModelResponse]:  # type: ignore[override]
        yield two_step_reply(messages)
        yield self._usage()

    async def ainvoke_stream(  # type: ignore[override]
        self, messages: list[Message], tools: Any = None, **kwargs: Any
    ) -> AsyncIterator[ModelResponse]:
        yield two_step_reply(messages)
        yield self._usage()

    def _parse_provider_response(self, response: Any, **kwargs: Any) -> ModelResponse:
        return response if isinstance(response, ModelResponse) else ModelResponse(content=str(response))

    def _parse_provider_response_delta(self, response: Any) -> ModelResponse:
        return self._parse_provider_response(response)


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name) or default)


def bench_agents(model_class: type[OpenAILike] = OpenAILike) -> list[Agent]:
    """assistant, calculator (offline model, no delay), calculator-two-step, stream-fast; stream-model and
    stream-model-slow when BENCH_MODEL_URL names the paced model server, on `model_class` (Agno's OpenAILike)."""
    agents = builtin_agents(OfflineModel(delay_seconds=0.0))
    agents.append(
        Agent(
            id=TWO_STEP_AGENT,
            name=TWO_STEP_AGENT,
            description="Answers 'What is A * B + C?' with its multiply and add tools, one after the other.",
            instructions=["Use your tools for every calculation, then state the result."],
            model=TwoStepCalculatorModel(),
            tools=list(CALCULATOR_TOOLS),
            add_history_to_context=True,
        )
    )
    fast = CountingModel(deltas=_env_int(ENV_FAST_DELTAS, 2000))
    models: list[tuple[str, Model]] = [(FAST_AGENT, fast)]
    if url := os.environ.get(ENV_MODEL_URL):
        name = model_name(_env_int(ENV_MODEL_DELTAS, 200), _env_int(ENV_MODEL_DELAY_MS, 20))
        for agent_id, model_id in ((MODEL_AGENT, name), (MODEL_SLOW_AGENT, model_name(SLOW_DELTAS, SLOW_DELAY_MS))):
            models.append((agent_id, model_class(id=model_id, base_url=url, api_key="bench", timeout=120)))
    for agent_id, model in models:
        agents.append(Agent(id=agent_id, name=agent_id, model=model, telemetry=False))
    for agent in agents:
        agent.telemetry = False
    return agents


def served_agents() -> list[Agent]:
    """agno-graphql's agents: the same, with the paced model server's agents on the model agno-graphql builds for an
    OpenAI-compatible URL (AGNO_GRAPHQL_MODEL_BASE_URL): Agno's OpenAILike with agno-graphql's chunk reading. The
    other sides use Agno's own OpenAILike (the limit is Agno's own path)."""
    from agno_graphql.agents.models import CompatibleModel

    return bench_agents(CompatibleModel)

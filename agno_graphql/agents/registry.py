"""The agent registry: built-in agents or the user's own, each given the server's database."""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from agno.agent import Agent
from agno.db.base import AsyncBaseDb
from agno.media.storage.base import AsyncMediaStorage
from agno.models.base import Model
from agno.tools.function import Function
from agno.tools.toolkit import Toolkit

from agno_graphql.agents.helpdesk import helpdesk_tools
from agno_graphql.agents.models import CompatibleModel, model_provider
from agno_graphql.agents.tools import CALCULATOR_TOOLS, with_timeout
from agno_graphql.errors import NotFound
from agno_graphql.settings import SettingsError


class AgentsModuleError(SettingsError):
    """AGNO_GRAPHQL_AGENTS does not name a usable list of agents; the message says why."""


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str | None
    parameters: dict[str, Any]


@dataclass(frozen=True)
class AgentSpec:
    """What clients are told about an agent, computed once."""

    id: str
    name: str
    description: str | None
    model_provider: str
    model_id: str
    instructions: list[str]
    tools: list[ToolSpec]


def builtin_agents(model: Model) -> list[Agent]:
    return [
        Agent(
            id="assistant",
            name="Assistant",
            description="A general chat assistant.",
            instructions=["You are a helpful, concise assistant."],
            model=model,
            add_history_to_context=True,
        ),
        Agent(
            id="calculator",
            name="Calculator",
            description="Answers arithmetic questions with its add, subtract, multiply and divide tools.",
            instructions=["Use your tools for every calculation, then state the result."],
            model=model,
            tools=list(CALCULATOR_TOOLS),
            add_history_to_context=True,
        ),
        Agent(
            id="helpdesk",
            name="Helpdesk",
            description="Restarts services, opens tickets, runs diagnostics and asks questions, each after asking "
            "the user: confirmation, input, the client running a tool, a choice of options.",
            instructions=["Ask the user before you act; use your tools for every request."],
            model=model,
            tools=helpdesk_tools(),
            add_history_to_context=True,
        ),
    ]


def load_agents_module(reference: str) -> list[Agent]:
    """`package.module:attribute`, the attribute a list of agents or a factory returning one."""
    module_name, _, attribute = reference.partition(":")
    if not module_name or not attribute:
        raise AgentsModuleError(f"AGNO_GRAPHQL_AGENTS={reference!r}: expected package.module:attribute")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise AgentsModuleError(f"AGNO_GRAPHQL_AGENTS: cannot import {module_name!r}: {exc}") from None
    try:
        value = getattr(module, attribute)
    except AttributeError:
        raise AgentsModuleError(f"AGNO_GRAPHQL_AGENTS: {module_name!r} has no attribute {attribute!r}") from None
    if callable(value) and not isinstance(value, Agent):
        value = value()
    agents = [value] if isinstance(value, Agent) else list(value) if isinstance(value, Iterable) else []
    if not agents or not all(isinstance(agent, Agent) for agent in agents):
        raise AgentsModuleError(f"AGNO_GRAPHQL_AGENTS={reference!r} must give a non-empty list of agno Agents")
    return agents


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "agent"


def _tool_specs(tools: Iterable[Any]) -> list[ToolSpec]:
    functions: list[Function] = []
    for tool in tools:
        if isinstance(tool, Toolkit):
            functions.extend(tool.functions.values())
        elif isinstance(tool, Function):
            functions.append(tool)
        elif callable(tool):
            functions.append(Function.from_callable(tool))
    return [
        ToolSpec(name=f.name, description=f.description, parameters=dict(f.parameters or {"type": "object"}))
        for f in functions
    ]


def _instructions(agent: Agent) -> list[str]:
    value = agent.instructions
    if value is None or callable(value):
        return []
    return [value] if isinstance(value, str) else [str(item) for item in value]


class AgentRegistry:
    """Agents by id. Each agent is prepared once: database, model, tool timeout, no telemetry."""

    def __init__(
        self,
        agents: list[Agent],
        db: AsyncBaseDb,
        default_model: Model,
        tool_timeout_seconds: float | None = None,
        media_storage: AsyncMediaStorage | None = None,
    ) -> None:
        self._agents: dict[str, Agent] = {}
        self._specs: dict[str, AgentSpec] = {}
        for original in agents:
            # A copy: the caller's Agent objects (a module-level list) may serve other registries too.
            agent = original.deep_copy()
            agent.id = agent.id or _slug(agent.name or "agent")
            if agent.id in self._agents:
                raise AgentsModuleError(f"two agents share the id {agent.id!r}")
            agent.db = db
            agent.telemetry = False
            if media_storage is not None:
                # Attachments are stored there: Agno resolves their references, and offloads what tools and models
                # make, through the agent's storage (an agent's own storage would not find them).
                agent.media_storage = media_storage
                agent.store_media = True
            if agent.model is None:
                agent.model = default_model
            if not isinstance(agent.model, Model):
                raise AgentsModuleError(f"agent {agent.id!r}: model must be an agno Model instance")
            if tool_timeout_seconds is not None and isinstance(agent.tools, list):
                agent.tools = [with_timeout(tool, tool_timeout_seconds) for tool in agent.tools]
            self._agents[agent.id] = agent
            self._specs[agent.id] = AgentSpec(
                id=agent.id,
                name=agent.name or agent.id,
                description=agent.description,
                model_provider=model_provider(agent.model),
                model_id=agent.model.id,
                instructions=_instructions(agent),
                tools=_tool_specs(agent.tools if isinstance(agent.tools, list) else []),
            )

    def get(self, agent_id: str) -> Agent | None:
        return self._agents.get(agent_id)

    def spec(self, agent_id: str) -> AgentSpec | None:
        return self._specs.get(agent_id)

    def specs(self) -> list[AgentSpec]:
        return list(self._specs.values())

    async def aclose(self) -> None:
        """Close what the agents' models hold open (agno-graphql's model for an OpenAI-compatible URL: its client)."""
        for agent in self._agents.values():
            if isinstance(agent.model, CompatibleModel):
                await agent.model.aclose()

    def require(self, agent_id: str) -> tuple[Agent, AgentSpec]:
        """The agent and its description; NOT_FOUND when there is no such agent."""
        agent, spec = self._agents.get(agent_id), self._specs.get(agent_id)
        if agent is None or spec is None:
            raise NotFound("Agent not found.", agentId=agent_id)
        return agent, spec

"""Resolvers for agents."""

from __future__ import annotations

import strawberry

from agno_graphql.context import Info
from agno_graphql.schema.types import Agent


def resolve_agents(info: Info) -> list[Agent]:
    return [Agent.from_spec(spec) for spec in info.context.services.agents.specs()]


def resolve_agent(info: Info, id: strawberry.ID) -> Agent | None:
    spec = info.context.services.agents.spec(str(id))
    return Agent.from_spec(spec) if spec is not None else None

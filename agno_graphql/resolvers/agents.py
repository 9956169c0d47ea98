"""Resolvers for agents."""

from __future__ import annotations

import strawberry

from agno_graphql.schema.types import Agent


def resolve_agents(info: strawberry.Info) -> list[Agent]:
    return [Agent.from_spec(spec) for spec in info.context.services.agents()]


def resolve_agent(info: strawberry.Info, id: strawberry.ID) -> Agent | None:
    spec = info.context.services.agent(str(id))
    return Agent.from_spec(spec) if spec is not None else None

"""Resolvers for the viewer and their sessions."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import strawberry

from agno_graphql.context import Info
from agno_graphql.records import PageArgs
from agno_graphql.resolvers.selection import selects
from agno_graphql.resolvers.token_lifetime import while_token_holds
from agno_graphql.schema.enums import SessionEventKind
from agno_graphql.schema.events import SessionEvent
from agno_graphql.schema.inputs import SessionOrder
from agno_graphql.schema.paging import relay_page
from agno_graphql.schema.types import Connection, Session, Viewer, sessions_connection, timestamp


def resolve_viewer(info: Info) -> Viewer:
    return Viewer(user_id=strawberry.ID(info.context.user_id))


@relay_page
async def resolve_sessions(
    info: Info, agent_id: strawberry.ID | None = None, *, page: PageArgs, order_by: SessionOrder | None = None
) -> Connection[Session]:
    return await sessions_connection(
        info,
        page,
        agent_id=str(agent_id) if agent_id is not None else None,
        order_by=order_by,
        with_titles=selects(info, ("nodes", "name"), ("edges", "node", "name")),
    )


async def resolve_session(info: Info, id: strawberry.ID) -> Session | None:
    record = await info.context.services.sessions.get(info.context.user_id, str(id))
    return Session.from_record(record) if record is not None else None


async def session_events(info: Info) -> AsyncGenerator[SessionEvent, None]:
    """The viewer's session changes from now on."""
    changes = info.context.services.sessions.changes(info.context.user_id)
    async for change in while_token_holds(info.context, changes):
        yield SessionEvent(
            kind=SessionEventKind[change.kind],
            session_id=strawberry.ID(change.session_id),
            run_id=strawberry.ID(change.run_id) if change.run_id else None,
            at=timestamp(change.at),
        )

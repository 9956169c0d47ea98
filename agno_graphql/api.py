"""The schema: root types assembled from the types of `schema/` and the resolvers of `resolvers/`."""

from __future__ import annotations

import strawberry
from strawberry.permission import BasePermission

from agno_graphql.resolvers.agents import resolve_agent, resolve_agents
from agno_graphql.resolvers.attachments import resolve_attachment
from agno_graphql.resolvers.mutations.cancel_run import cancel_run
from agno_graphql.resolvers.mutations.create_session import create_session
from agno_graphql.resolvers.mutations.delete_session import delete_session
from agno_graphql.resolvers.mutations.fork_session import fork_session
from agno_graphql.resolvers.mutations.rename_session import rename_session
from agno_graphql.resolvers.mutations.upload_attachment import upload_attachment
from agno_graphql.resolvers.permissions import IsAuthenticated
from agno_graphql.resolvers.runs import (
    continue_run,
    edit_message,
    regenerate_run,
    resolve_run,
    run_agent,
    run_events,
)
from agno_graphql.resolvers.sessions import resolve_session, resolve_sessions, resolve_viewer, session_events
from agno_graphql.schema.events import EVENT_TYPES
from agno_graphql.schema.payloads import (
    CancelRunPayload,
    CreateSessionPayload,
    DeleteSessionPayload,
    ForkSessionPayload,
    RenameSessionPayload,
    UploadAttachmentPayload,
)
from agno_graphql.schema.types import Agent, Attachment, Connection, Run, Session, Viewer

authenticated: list[type[BasePermission]] = [IsAuthenticated]


@strawberry.type
class Query:
    viewer: Viewer = strawberry.field(resolver=resolve_viewer, permission_classes=authenticated)
    agents: list[Agent] = strawberry.field(resolver=resolve_agents, permission_classes=authenticated)
    agent: Agent | None = strawberry.field(resolver=resolve_agent, permission_classes=authenticated)
    sessions: Connection[Session] = strawberry.field(
        resolver=resolve_sessions,
        permission_classes=authenticated,
        description="The viewer's sessions, optionally of one agent; newest activity first by default.",
    )
    session: Session | None = strawberry.field(
        resolver=resolve_session,
        permission_classes=authenticated,
        description="Null when the session does not exist or is not the viewer's.",
    )
    run: Run | None = strawberry.field(
        resolver=resolve_run,
        permission_classes=authenticated,
        description="A run of the viewer's: RUNNING while it goes, then as stored. Null when not found.",
    )
    attachment: Attachment | None = strawberry.field(
        resolver=resolve_attachment,
        permission_classes=authenticated,
        description="An attachment of the viewer's; null when it does not exist or is someone else's.",
    )


@strawberry.type
class Mutation:
    create_session: CreateSessionPayload = strawberry.mutation(
        resolver=create_session, permission_classes=authenticated
    )
    rename_session: RenameSessionPayload = strawberry.mutation(
        resolver=rename_session, permission_classes=authenticated
    )
    delete_session: DeleteSessionPayload = strawberry.mutation(
        resolver=delete_session, permission_classes=authenticated
    )
    cancel_run: CancelRunPayload = strawberry.mutation(
        resolver=cancel_run,
        permission_classes=authenticated,
        description="Cancel a run; followers get RunCancelled, and the run is stored CANCELLED with its "
        "partial content. A finished run is returned as it is.",
    )
    fork_session: ForkSessionPayload = strawberry.mutation(
        resolver=fork_session,
        permission_classes=authenticated,
        description="A new session of the viewer's, for the same agent, with the conversation up to and including "
        "an assistant message (all of it when none is given); every copied message gets a new id.",
    )
    upload_attachment: UploadAttachmentPayload = strawberry.mutation(
        resolver=upload_attachment,
        permission_classes=authenticated,
        description="Keep a file (a GraphQL multipart request over HTTP, one file of at most MAX_ATTACHMENT_BYTES) to "
        "send with a message: its type is read from its bytes. Unsent, it is removed after ATTACHMENT_UNUSED_SECONDS.",
    )


@strawberry.type
class Subscription:
    run_agent = strawberry.subscription(resolver=run_agent, permission_classes=authenticated)
    run_events = strawberry.subscription(
        resolver=run_events,
        permission_classes=authenticated,
        description="Follow a run (started by any connection, on any instance): its events with index "
        "greater than afterIndex, then live ones until the terminal event.",
    )
    session_events = strawberry.subscription(
        resolver=session_events,
        permission_classes=authenticated,
        description="The viewer's sessions as they are created, renamed, run and deleted, from now on.",
    )
    continue_run = strawberry.subscription(
        resolver=continue_run,
        permission_classes=authenticated,
        description="Answer every open requirement of a paused run and stream the rest of it: RunContinued "
        "first, then one terminal event (or RunPaused again). RUN_NOT_PAUSED when the run is not waiting.",
    )
    regenerate_run = strawberry.subscription(
        resolver=regenerate_run,
        permission_classes=authenticated,
        description="A new answer to the user message of a session's latest run (NOT_LATEST_RUN for an earlier "
        "one); the run it replaces stays stored, replaced, among the new one's alternatives.",
    )
    edit_message = strawberry.subscription(
        resolver=edit_message,
        permission_classes=authenticated,
        description="Change a user message and answer it again: its run and every later one leave the "
        "conversation (kept, replaced), and a new run answers the edited text with the history before it.",
    )


schema = strawberry.Schema(query=Query, mutation=Mutation, subscription=Subscription, types=EVENT_TYPES)

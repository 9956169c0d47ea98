"""Object types: agents, sessions, messages, runs, and their cursor connections.

Types are built from the domain records; fields that need more data ask the
services on the context, so this package holds no database or agent code.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

import strawberry
from strawberry.scalars import JSON

from agno_graphql.context import Info
from agno_graphql.records import (
    AttachmentRecord,
    MessageRecord,
    PageArgs,
    RequirementRecord,
    RunMetricsData,
    RunRecord,
    SessionRecord,
    ToolCallRecord,
)
from agno_graphql.schema.enums import AttachmentKind, MessageRole, RequirementKind, RunStatus
from agno_graphql.schema.inputs import SessionOrder
from agno_graphql.schema.paging import relay_page

T = TypeVar("T")
R = TypeVar("R")

if TYPE_CHECKING:
    from agno_graphql.agents.registry import AgentSpec
    from agno_graphql.db.pagination import Page


def timestamp(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


@strawberry.type
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


@strawberry.type
class Edge(Generic[T]):
    cursor: str
    node: T


def _edges(self: Connection[T]) -> list[Edge[T]]:
    return [Edge(cursor=c, node=node) for node, c in zip(self.nodes, self.cursors(), strict=True)]


@strawberry.type
class Connection(Generic[T]):
    edges: list[Edge[T]] = strawberry.field(resolver=_edges)
    page_info: PageInfo
    nodes: list[T]
    cursors: strawberry.Private[Callable[[], list[str]]]
    count_total: strawberry.Private[Callable[[], Awaitable[int]]]

    @strawberry.field(description="All items in the list, not just this page (counted only when asked for).")
    async def total_count(self) -> int:
        return await self.count_total()


def connection(page: Page[R], to_node: Callable[[R], T]) -> Connection[T]:
    """A Connection from a domain page (items, cursors, flags and a counter)."""
    return Connection(
        nodes=[to_node(item) for item in page.items],
        page_info=PageInfo(
            has_next_page=page.has_next_page,
            has_previous_page=page.has_previous_page,
            start_cursor=page.start_cursor,
            end_cursor=page.end_cursor,
        ),
        cursors=page.cursors,
        count_total=page.count_total,
    )


@strawberry.type
class Viewer:
    user_id: strawberry.ID


@strawberry.type
class ModelInfo:
    provider: str
    id: str


@strawberry.type
class ToolInfo:
    name: str
    description: str | None
    parameters: JSON = strawberry.field(description="The tool's parameters as a JSON Schema.")


@strawberry.type(description="A file sent with a message (or made by a tool or the model), stored once, shown by link.")
class Attachment:
    id: strawberry.ID
    name: str
    mime_type: str
    byte_size: int
    kind: AttachmentKind
    width: int | None = strawberry.field(description="Images: the width in pixels, when known.")
    height: int | None = strawberry.field(description="Images: the height in pixels, when known.")
    created_at: datetime
    record: strawberry.Private[AttachmentRecord]

    @strawberry.field(
        description="A signed link to download it, with no header needed (an <img> tag can show it), made fresh on "
        "every read and valid ATTACHMENT_URL_SECONDS; absolute when PUBLIC_BASE_URL is set, else a path from the root."
    )
    def url(self, info: Info) -> str:
        return info.context.services.attachments.url(self.record.id, info.context.user_id, self.record.name)

    @classmethod
    def from_record(cls, record: AttachmentRecord) -> Attachment:
        return cls(
            id=strawberry.ID(record.id),
            name=record.name,
            mime_type=record.mime_type,
            byte_size=record.byte_size,
            kind=AttachmentKind(record.kind),
            width=record.width,
            height=record.height,
            created_at=timestamp(record.created_at),
            record=record,
        )


@strawberry.type
class ToolCall:
    id: strawberry.ID
    name: str
    arguments: JSON | None

    @classmethod
    def from_record(cls, record: ToolCallRecord) -> ToolCall:
        # Served as it is: the type has no interface, so its fields are read from the record's attributes.
        return cast(ToolCall, record)


@strawberry.type
class RunMetrics:
    input_tokens: int | None = None
    output_tokens: int | None = None
    total_tokens: int | None = None
    duration_ms: float | None = None
    time_to_first_token_ms: float | None = None

    @classmethod
    def from_data(cls, data: RunMetricsData | None) -> RunMetrics | None:
        # Served as it is, like a ToolCall.
        return cast(RunMetrics | None, data)


@strawberry.type
class UserInputField:
    name: str
    type: str = strawberry.field(description="The Python type the tool takes: str, int, float, bool, list or dict.")
    description: str | None
    value: JSON | None = strawberry.field(description="What the model filled in; null where the person is to.")


@strawberry.type
class FeedbackOption:
    label: str
    description: str | None


@strawberry.type
class FeedbackQuestion:
    header: str | None
    question: str
    options: list[FeedbackOption]
    multi_select: bool


@strawberry.type(description="Something a paused run waits for before it goes on.")
class RunRequirement:
    id: strawberry.ID
    kind: RequirementKind
    tool_call: ToolCall = strawberry.field(description="The call that waits: name and arguments.")
    input_fields: list[UserInputField] = strawberry.field(description="USER_INPUT: what to fill in (empty otherwise).")
    questions: list[FeedbackQuestion] = strawberry.field(description="USER_FEEDBACK: what to choose (empty otherwise).")
    created_at: datetime

    @classmethod
    def from_record(cls, record: RequirementRecord) -> RunRequirement:
        # The nested records are served as they are, like a ToolCall.
        return cls(
            id=strawberry.ID(record.id),
            kind=RequirementKind(record.kind),
            tool_call=ToolCall.from_record(record.tool_call),
            input_fields=cast(list[UserInputField], list(record.input_fields)),
            questions=cast(list[FeedbackQuestion], list(record.questions)),
            created_at=timestamp(record.created_at),
        )


@strawberry.type
class Agent:
    id: strawberry.ID
    name: str
    description: str | None
    model: ModelInfo
    instructions: list[str]
    tools: list[ToolInfo]

    @classmethod
    def from_spec(cls, spec: AgentSpec) -> Agent:
        return cls(
            id=strawberry.ID(spec.id),
            name=spec.name,
            description=spec.description,
            model=ModelInfo(provider=spec.model_provider, id=spec.model_id),
            instructions=list(spec.instructions),
            tools=[ToolInfo(name=t.name, description=t.description, parameters=JSON(t.parameters)) for t in spec.tools],
        )

    @strawberry.field(description="The viewer's sessions with this agent, newest activity first by default.")
    @relay_page
    async def sessions(self, info: Info, page: PageArgs, order_by: SessionOrder | None = None) -> Connection[Session]:
        return await sessions_connection(info, page, agent_id=str(self.id), order_by=order_by)


@strawberry.type
class Message:
    id: strawberry.ID
    run_id: strawberry.ID | None
    role: MessageRole
    content: str | None
    tool_calls: list[ToolCall]
    tool_call_id: str | None
    tool_name: str | None
    created_at: datetime
    attachments: list[Attachment] = strawberry.field(
        description="What the user sent with it; on the run's last assistant message, media a tool or the model made."
    )

    @classmethod
    def from_record(cls, record: MessageRecord) -> Message:
        return cls(
            id=strawberry.ID(record.id),
            run_id=strawberry.ID(record.run_id) if record.run_id else None,
            role=MessageRole(record.role),
            content=record.content,
            tool_calls=[ToolCall.from_record(call) for call in record.tool_calls],
            tool_call_id=record.tool_call_id,
            tool_name=record.tool_name,
            created_at=timestamp(record.created_at),
            attachments=[Attachment.from_record(a) for a in record.attachments],
        )


@strawberry.type
class Run:
    id: strawberry.ID
    session_id: strawberry.ID
    agent_id: strawberry.ID
    status: RunStatus
    input: str | None
    content: str | None
    created_at: datetime
    metrics: RunMetrics | None
    requirements: list[RunRequirement] = strawberry.field(
        description="While PAUSED: what the run waits for, unanswered; else empty."
    )
    replaced: bool = strawberry.field(
        description="True when a regeneration or an edit took the run out of the conversation (it is kept)."
    )
    record: strawberry.Private[RunRecord]

    @strawberry.field(description="Every answer to the same user message, oldest first, this one included.")
    async def alternatives(self, info: Info) -> list[Run]:
        records = await info.context.services.edits.alternatives(info.context.user_id, self.record)
        return [Run.from_record(record) for record in records]

    @classmethod
    def from_record(cls, record: RunRecord) -> Run:
        status = record.status if record.status in RunStatus.__members__ else "COMPLETED"
        return cls(
            id=strawberry.ID(record.id),
            session_id=strawberry.ID(record.session_id),
            agent_id=strawberry.ID(record.agent_id),
            status=RunStatus[status],
            input=record.input,
            content=record.content,
            created_at=timestamp(record.created_at),
            metrics=RunMetrics.from_data(record.metrics),
            requirements=[RunRequirement.from_record(r) for r in record.requirements],
            replaced=record.replaced,
            record=record,
        )


@strawberry.type
class Session:
    id: strawberry.ID
    agent_id: strawberry.ID
    created_at: datetime
    updated_at: datetime
    stored_name: strawberry.Private[str | None]
    title: strawberry.Private[str | None] = None
    title_known: strawberry.Private[bool] = False

    @classmethod
    def from_record(cls, record: SessionRecord) -> Session:
        return cls(
            id=strawberry.ID(record.id),
            agent_id=strawberry.ID(record.agent_id),
            created_at=timestamp(record.created_at),
            updated_at=timestamp(record.updated_at),
            stored_name=record.name,
            title=record.title,
            title_known=record.title_known,
        )

    @strawberry.field(description="The name given, or else the first user message, shortened.")
    def name(self, info: Info) -> str | None:
        # Not async: a page that read its titles with the sessions answers without a coroutine per node.
        if self.stored_name or self.title_known:
            return self.stored_name or self.title
        pending: Any = info.context.session_titles.load(str(self.id))  # awaited by graphql-core
        return cast(str | None, pending)

    @strawberry.field
    def agent(self, info: Info) -> Agent | None:
        spec = info.context.services.agents.spec(str(self.agent_id))
        return Agent.from_spec(spec) if spec is not None else None

    @strawberry.field
    async def run_count(self, info: Info) -> int:
        return await info.context.run_counts.load(str(self.id))

    @strawberry.field(description="The run going in this session now; null when it is idle.")
    async def active_run(self, info: Info) -> Run | None:
        record = await info.context.active_runs.load(str(self.id))
        return Run.from_record(record) if record is not None else None

    @strawberry.field(
        description="The runs waiting in this session's line (sent with ifBusy: ENQUEUE), PENDING, first in line "
        "first; each joins `messages` and `runs` when it starts (runEvents follows one from its start)."
    )
    async def queued_runs(self, info: Info) -> list[Run]:
        return [Run.from_record(record) for record in await info.context.services.history.queued(str(self.id))]

    @strawberry.field(
        description="The conversation in order across runs, each message once. "
        "`last: 20` gives the newest twenty; `before` pages back. System messages only when asked for in `roles`."
    )
    @relay_page
    async def messages(self, info: Info, page: PageArgs, roles: list[MessageRole] | None = None) -> Connection[Message]:
        wanted = [role.value for role in roles] if roles is not None else None
        return connection(await info.context.services.history.messages(str(self.id), page, wanted), Message.from_record)

    @strawberry.field
    @relay_page
    async def runs(self, info: Info, page: PageArgs, include_replaced: bool | None = False) -> Connection[Run]:
        records = await info.context.services.history.runs(str(self.id), page, include_replaced=bool(include_replaced))
        return connection(records, Run.from_record)


async def sessions_connection(
    info: Info, page: PageArgs, *, agent_id: str | None, order_by: SessionOrder | None, with_titles: bool = False
) -> Connection[Session]:
    """A page of the viewer's sessions (`Query.sessions`, `Agent.sessions`)."""
    records = await info.context.services.sessions.list(
        info.context.user_id,
        page,
        agent_id=agent_id,
        ordering=SessionOrder.as_ordering(order_by),
        with_titles=with_titles,
    )
    return connection(records, Session.from_record)

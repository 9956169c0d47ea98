"""The journey through a typed client generated from schema.graphql and tests/operations/ (ariadne-codegen).

`make typed-client` generates tests/typed_client/ (git-ignored); `make test` regenerates it before pytest,
so an operation the schema no longer supports fails the build, and a changed field type fails here.
"""

from __future__ import annotations

import importlib.util
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime

import pytest

from tests.client import bearer
from tests.conftest import RunningServer, make_token

if importlib.util.find_spec("tests.typed_client") is None:
    pytest.fail("tests/typed_client/ is missing: run `make typed-client` (make test does)", pytrace=False)

from tests.typed_client import (
    AgnoGraphQLClient,
    CreateSessionInput,
    DeleteSessionInput,
    GraphQLClientGraphQLMultiError,
    MessageRole,
    RenameSessionInput,
    RunAgentInput,
    RunAgentRunAgentRunCompleted,
    RunAgentRunAgentRunContentDelta,
    RunAgentRunAgentRunStarted,
    RunAgentRunAgentToolCallCompleted,
    RunAgentRunAgentToolCallStarted,
)
from tests.typed_client.run_agent import RunAgent


@asynccontextmanager
async def typed_client(server: RunningServer, token: str) -> AsyncIterator[AgnoGraphQLClient]:
    async with AgnoGraphQLClient(
        url=server.http_url,
        headers=bearer(token),
        ws_url=server.ws_url,
        ws_connection_init_payload=bearer(token),
    ) as client:
        yield client


async def run_events(client: AgnoGraphQLClient, agent_id: str, message: str, session_id: str) -> list[RunAgent]:
    run_input = RunAgentInput(agent_id=agent_id, message=message, session_id=session_id)
    return [event async for event in client.run_agent(run_input)]


async def test_typed_journey_create_run_page_rename_delete(server: RunningServer, user_id: str) -> None:
    async with typed_client(server, make_token(user_id)) as client:
        created = (await client.create_session(CreateSessionInput(agent_id="calculator", name="Sums"))).create_session
        session = created.session
        assert (session.agent_id, session.name, session.run_count) == ("calculator", "Sums", 0)
        assert isinstance(session.created_at, datetime)

        events = [result.run_agent for result in await run_events(client, "calculator", "What is 12 * 7?", session.id)]
        assert isinstance(events[0], RunAgentRunAgentRunStarted)
        assert events[0].model.provider == "offline"
        assert isinstance(events[-1], RunAgentRunAgentRunCompleted)
        started = next(e for e in events if isinstance(e, RunAgentRunAgentToolCallStarted))
        completed = next(e for e in events if isinstance(e, RunAgentRunAgentToolCallCompleted))
        assert started.tool_call.name == "multiply"
        assert (completed.result, completed.failed) == ("84", False)
        answer = "".join(e.delta for e in events if isinstance(e, RunAgentRunAgentRunContentDelta))
        assert answer == events[-1].content == "The answer is 84."

        for message in ("one", "two"):
            other = (await client.create_session(CreateSessionInput(agent_id="assistant"))).create_session.session
            await run_events(client, "assistant", message, other.id)

        # Sessions, two per page, forwards with `after`.
        seen: list[str] = []
        after: str | None = None
        for _ in range(10):
            page = (await client.sessions(first=2, after=after)).sessions
            seen += [edge.node.id for edge in page.edges]
            if not page.page_info.has_next_page:
                break
            after = page.page_info.end_cursor
        assert page.total_count == 3
        assert len(seen) == len(set(seen)) == 3 and session.id in seen

        # History, two messages per page, backwards with `last` and `before`.
        messages: list[tuple[MessageRole, str | None]] = []
        before: str | None = None
        for _ in range(10):
            history = (await client.session_history(session.id, last=2, before=before)).session
            assert history is not None
            messages = [(edge.node.role, edge.node.content) for edge in history.messages.edges] + messages
            if not history.messages.page_info.has_previous_page:
                break
            before = history.messages.page_info.start_cursor
        assert [role for role, _ in messages] == [
            MessageRole.USER,
            MessageRole.ASSISTANT,
            MessageRole.TOOL,
            MessageRole.ASSISTANT,
        ]
        assert messages[0][1] == "What is 12 * 7?" and messages[-1][1] == "The answer is 84."

        renamed = await client.rename_session(RenameSessionInput(session_id=session.id, name="Multiplication"))
        assert renamed.rename_session.session.name == "Multiplication"
        deleted = await client.delete_session(DeleteSessionInput(session_id=session.id))
        assert deleted.delete_session.deleted_session_id == session.id
        assert (await client.session(session.id)).session is None


async def test_typed_client_with_a_rejected_token_raises_unauthenticated(server: RunningServer) -> None:
    async with typed_client(server, "not-a-valid-token") as client:
        with pytest.raises(GraphQLClientGraphQLMultiError) as raised:
            await client.sessions(first=1)
    assert [error.extensions for error in raised.value.errors] == [
        {"code": "UNAUTHENTICATED"},
    ]

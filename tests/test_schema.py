"""The schema contract.

`schema.graphql` is the exported schema and keeps the contract's names; every operation
document a chat frontend uses (tests/operations/) validates against that file and runs
for real against the server, queries and mutations over HTTP, the subscription over a websocket.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pytest
from graphql import (
    FragmentDefinitionNode,
    GraphQLSchema,
    OperationDefinitionNode,
    build_schema,
    introspection_from_schema,
    parse,
    validate,
)

from agno_graphql import cli
from tests.client import OPERATIONS_DIR, SHARED_FRAGMENTS, execute, operation, subscribe
from tests.conftest import RunningServer, make_token
from tests.matrix_support import create_session

ROOT = Path(__file__).resolve().parent.parent
SCHEMA_FILE = ROOT / "schema.graphql"
FRONTEND_OPERATIONS = {
    "Viewer",
    "Agents",
    "Agent",
    "Sessions",
    "AgentSessions",
    "Session",
    "SessionHistory",
    "SessionRuns",
    "CreateSession",
    "RenameSession",
    "DeleteSession",
    "RunAgent",
    "ContinueRun",
}
RUN_EVENT_TYPES = {
    "RunStarted",
    "RunContentDelta",
    "ReasoningDelta",
    "ToolCallStarted",
    "ToolCallCompleted",
    "RunCompleted",
    "RunFailed",
    "RunCancelled",
    "RunPaused",
    "RunContinued",
}


def operation_files() -> list[Path]:
    return sorted(path for path in OPERATIONS_DIR.glob("*.graphql") if path != SHARED_FRAGMENTS)


@functools.cache
def sdl_schema() -> GraphQLSchema:
    return build_schema(SCHEMA_FILE.read_text())


@functools.cache
def introspected_types() -> dict[str, dict[str, Any]]:
    """The types of schema.graphql as graphql-core's introspection reports them, by name."""
    result = introspection_from_schema(sdl_schema())
    return {t["name"]: t for t in result["__schema"]["types"]}


def root_type_names() -> dict[str, str | None]:
    schema = introspection_from_schema(sdl_schema())["__schema"]
    return {kind: (schema[f"{kind}Type"] or {}).get("name") for kind in ("query", "mutation", "subscription")}


def type_ref(ref: dict[str, Any]) -> str:
    """An introspected type reference written as in SDL, e.g. `[Session!]!`."""
    if ref["kind"] == "NON_NULL":
        return f"{type_ref(ref['ofType'])}!"
    if ref["kind"] == "LIST":
        return f"[{type_ref(ref['ofType'])}]"
    return str(ref["name"])


def fields_of(type_name: str) -> dict[str, str]:
    """Field name -> SDL type of an object or interface type."""
    return {f["name"]: type_ref(f["type"]) for f in introspected_types()[type_name]["fields"]}


def arguments_of(type_name: str, field_name: str) -> dict[str, str]:
    field = next(f for f in introspected_types()[type_name]["fields"] if f["name"] == field_name)
    return {a["name"]: type_ref(a["type"]) for a in field["args"]}


def kind_of(type_name: str) -> str | None:
    found = introspected_types().get(type_name)
    return found["kind"] if found else None


# --- schema.graphql is the exported schema -------------------------------------------------------


def test_schema_file_equals_exported_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["export-schema"]) == 0
    exported = capsys.readouterr().out
    assert SCHEMA_FILE.read_text() == exported, "schema.graphql is out of date: run `make schema` and commit it"


# --- the contract's names ------------------------------------------------------------------------


def test_schema_has_contract_root_fields() -> None:
    assert root_type_names() == {"query": "Query", "mutation": "Mutation", "subscription": "Subscription"}
    query = fields_of("Query")
    assert query["viewer"] == "Viewer!"
    assert query["agents"] == "[Agent!]!"
    assert query["agent"] == "Agent"
    assert query["sessions"] == "SessionConnection!"
    assert query["session"] == "Session"
    assert arguments_of("Query", "agent") == {"id": "ID!"}
    assert arguments_of("Query", "session") == {"id": "ID!"}
    assert arguments_of("Query", "sessions") == {
        "agentId": "ID",
        "first": "Int",
        "after": "String",
        "last": "Int",
        "before": "String",
        "orderBy": "SessionOrder",
    }
    mutation = fields_of("Mutation")
    assert mutation["createSession"] == "CreateSessionPayload!"
    assert mutation["renameSession"] == "RenameSessionPayload!"
    assert mutation["deleteSession"] == "DeleteSessionPayload!"
    assert arguments_of("Mutation", "createSession") == {"input": "CreateSessionInput!"}
    assert arguments_of("Mutation", "renameSession") == {"input": "RenameSessionInput!"}
    assert arguments_of("Mutation", "deleteSession") == {"input": "DeleteSessionInput!"}
    assert fields_of("Subscription")["runAgent"] == "RunEvent!"
    assert arguments_of("Subscription", "runAgent") == {"input": "RunAgentInput!"}


def test_run_event_is_an_interface_with_every_contract_event_type() -> None:
    run_event = introspected_types()["RunEvent"]
    assert run_event["kind"] == "INTERFACE"
    common = {"runId": "ID!", "sessionId": "ID!", "index": "Int!", "createdAt": "DateTime!"}
    assert fields_of("RunEvent") == common
    assert {t["name"] for t in run_event["possibleTypes"]} >= RUN_EVENT_TYPES
    for name in RUN_EVENT_TYPES:
        event = introspected_types()[name]
        assert event["kind"] == "OBJECT", name
        assert "RunEvent" in {i["name"] for i in event["interfaces"]}, name
        assert common.items() <= fields_of(name).items(), name


def test_run_event_types_carry_their_payload_fields() -> None:
    assert fields_of("RunStarted")["agentId"] == "ID!"
    assert fields_of("RunStarted")["model"] == "ModelInfo!"
    assert fields_of("RunContentDelta")["delta"] == "String!"
    assert fields_of("ReasoningDelta")["delta"] == "String!"
    assert fields_of("ToolCallStarted")["toolCall"] == "ToolCall!"
    assert {"toolCall": "ToolCall!", "result": "String", "failed": "Boolean!"}.items() <= fields_of(
        "ToolCallCompleted"
    ).items()
    assert {"content": "String", "metrics": "RunMetrics"}.items() <= fields_of("RunCompleted").items()
    assert {"message": "String!", "code": "String!"}.items() <= fields_of("RunFailed").items()
    assert {"reason": "String", "content": "String"}.items() <= fields_of("RunCancelled").items()


@pytest.mark.parametrize("node", ["Session", "Message", "Run"])
def test_lists_are_relay_connections_with_total_count(node: str) -> None:
    assert kind_of(f"{node}Connection") == "OBJECT"
    connection = fields_of(f"{node}Connection")
    assert connection["edges"] == f"[{node}Edge!]!"
    assert connection["pageInfo"] == "PageInfo!"
    assert connection["nodes"] == f"[{node}!]!"
    assert connection["totalCount"] == "Int!"
    assert fields_of(f"{node}Edge") == {"cursor": "String!", "node": f"{node}!"}


def test_page_info_has_relay_fields() -> None:
    assert fields_of("PageInfo") == {
        "hasNextPage": "Boolean!",
        "hasPreviousPage": "Boolean!",
        "startCursor": "String",
        "endCursor": "String",
    }


def test_paged_fields_take_relay_arguments() -> None:
    relay = {"first": "Int", "after": "String", "last": "Int", "before": "String"}
    assert fields_of("Session")["messages"] == "MessageConnection!"
    assert arguments_of("Session", "messages") == {**relay, "roles": "[MessageRole!]"}
    assert fields_of("Session")["runs"] == "RunConnection!"
    assert arguments_of("Session", "runs") == {**relay, "includeReplaced": "Boolean"}
    assert fields_of("Agent")["sessions"] == "SessionConnection!"
    assert arguments_of("Agent", "sessions") == {**relay, "orderBy": "SessionOrder"}


@pytest.mark.parametrize(
    ("enum", "values"),
    [
        ("MessageRole", {"SYSTEM", "USER", "ASSISTANT", "TOOL"}),
        ("RunStatus", {"PENDING", "RUNNING", "COMPLETED", "ERROR", "CANCELLED", "PAUSED"}),
        ("SessionOrderField", {"CREATED_AT", "UPDATED_AT"}),
        ("OrderDirection", {"ASC", "DESC"}),
    ],
)
def test_enums_keep_contract_values(enum: str, values: set[str]) -> None:
    assert kind_of(enum) == "ENUM"
    assert {v["name"] for v in introspected_types()[enum]["enumValues"]} >= values


def test_session_order_defaults_to_updated_at_descending() -> None:
    session_order = introspected_types()["SessionOrder"]
    assert session_order["kind"] == "INPUT_OBJECT"
    fields = {f["name"]: (type_ref(f["type"]), f["defaultValue"]) for f in session_order["inputFields"]}
    assert fields == {
        "field": ("SessionOrderField!", "UPDATED_AT"),
        "direction": ("OrderDirection!", "DESC"),
    }


def test_custom_scalars_are_datetime_and_json() -> None:
    assert kind_of("DateTime") == "SCALAR"
    assert kind_of("JSON") == "SCALAR"
    assert fields_of("Session")["createdAt"] == "DateTime!"
    assert fields_of("Message")["createdAt"] == "DateTime!"
    assert fields_of("ToolCall")["arguments"] == "JSON"
    assert fields_of("ToolInfo")["parameters"] == "JSON!"


# --- the operation documents -----------------------------------------------------------------------


def test_operation_documents_cover_the_chat_frontend() -> None:
    assert {path.stem for path in operation_files()} == FRONTEND_OPERATIONS


@pytest.mark.parametrize("path", operation_files(), ids=lambda path: path.stem)
def test_operation_document_validates_against_schema_file(path: Path) -> None:
    document = parse(operation(path.stem))
    errors = validate(sdl_schema(), document)
    assert errors == [], [error.message for error in errors]
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    assert [op.name.value if op.name else None for op in operations] == [path.stem]


def test_every_shared_fragment_is_spread_by_an_operation() -> None:
    shared = {
        d.name.value for d in parse(SHARED_FRAGMENTS.read_text()).definitions if isinstance(d, FragmentDefinitionNode)
    }
    spread = {
        d.name.value
        for path in operation_files()
        for d in parse(operation(path.stem)).definitions
        if isinstance(d, FragmentDefinitionNode)
    }
    assert shared and shared <= spread, shared - spread


async def run(server: RunningServer, token: str, agent_id: str, message: str, session_id: str | None) -> list[Any]:
    variables = {"input": {"agentId": agent_id, "message": message, "sessionId": session_id}}
    results = await subscribe(server, token, operation("RunAgent"), variables)
    return [result["runAgent"] for result in results]


async def chat(server: RunningServer, token: str, *messages: str) -> str:
    """A new session with the assistant, one run per message in turn; its id."""
    session_id = str((await create_session(server, token))["id"])
    for message in messages:
        await run(server, token, "assistant", message, session_id)
    return session_id


async def test_viewer_operation_returns_the_token_user(server: RunningServer, user_id: str) -> None:
    result = await execute(server, make_token(user_id), operation("Viewer"))
    assert result == {"viewer": {"userId": user_id}}


async def test_agents_operation_lists_agents_with_their_tools(server: RunningServer, user_id: str) -> None:
    result = await execute(server, make_token(user_id), operation("Agents"))
    agents = {agent["id"]: agent for agent in result["agents"]}
    assert {"assistant", "calculator"} <= agents.keys()
    assert "multiply" in [tool["name"] for tool in agents["calculator"]["tools"]]
    assert agents["assistant"]["model"] == {"provider": "offline", "id": "offline-demo"}


async def test_agent_operation_returns_one_agent(server: RunningServer, token: str) -> None:
    result = await execute(server, token, operation("Agent"), {"id": "calculator"})
    assert result["agent"]["id"] == "calculator"
    multiply = next(tool for tool in result["agent"]["tools"] if tool["name"] == "multiply")
    assert multiply["parameters"]["type"] == "object"
    missing = await execute(server, token, operation("Agent"), {"id": "no-such-agent"})
    assert missing == {"agent": None}


async def test_create_session_operation_creates_an_empty_session(server: RunningServer, user_id: str) -> None:
    session = await create_session(server, make_token(user_id), "assistant", name="Trip plans")
    assert session["agentId"] == "assistant"
    assert session["name"] == "Trip plans"
    assert session["runCount"] == 0
    assert session["createdAt"] == session["updatedAt"]


async def test_rename_session_operation_renames(server: RunningServer, token: str) -> None:
    session_id = (await create_session(server, token))["id"]
    variables = {"input": {"sessionId": session_id, "name": "Renamed chat"}}
    result = await execute(server, token, operation("RenameSession"), variables)
    assert result["renameSession"]["session"]["id"] == session_id
    assert result["renameSession"]["session"]["name"] == "Renamed chat"


async def test_delete_session_operation_deletes(server: RunningServer, token: str) -> None:
    session_id = (await create_session(server, token))["id"]
    result = await execute(server, token, operation("DeleteSession"), {"input": {"sessionId": session_id}})
    assert result == {"deleteSession": {"deletedSessionId": session_id}}
    assert await execute(server, token, operation("Session"), {"id": session_id}) == {"session": None}


async def test_sessions_operation_pages_through_the_viewers_sessions(
    server: RunningServer, user_id: str, token: str
) -> None:
    # Ids ascending in creation order: the order is the same when two sessions share a createdAt second.
    created = [
        (await create_session(server, token, name=f"chat {i}", session_id=f"{user_id}-{i}"))["id"] for i in range(3)
    ]
    order = {"field": "CREATED_AT", "direction": "ASC"}
    first = await execute(server, token, operation("Sessions"), {"first": 2, "orderBy": order})
    page = first["sessions"]
    assert page["totalCount"] == 3
    assert [edge["node"]["id"] for edge in page["edges"]] == created[:2]
    assert page["pageInfo"]["hasNextPage"] is True
    after = page["pageInfo"]["endCursor"]
    second = await execute(server, token, operation("Sessions"), {"first": 2, "after": after, "orderBy": order})
    page = second["sessions"]
    assert [edge["node"]["id"] for edge in page["edges"]] == created[2:]
    assert page["pageInfo"]["hasNextPage"] is False
    assert page["pageInfo"]["hasPreviousPage"] is True


async def test_agent_sessions_operation_lists_one_agents_sessions(server: RunningServer, token: str) -> None:
    calculator_session = (await create_session(server, token, "calculator"))["id"]
    await create_session(server, token, "assistant")
    result = await execute(server, token, operation("AgentSessions"), {"agentId": "calculator", "first": 10})
    sessions = result["agent"]["sessions"]
    assert [node["id"] for node in sessions["nodes"]] == [calculator_session]
    assert sessions["totalCount"] == 1


async def test_session_operation_returns_the_session_with_its_agent(server: RunningServer, token: str) -> None:
    session_id = (await create_session(server, token, "calculator"))["id"]
    await run(server, token, "calculator", "What is 12 * 7?", session_id)
    result = await execute(server, token, operation("Session"), {"id": session_id})
    session = result["session"]
    assert session["id"] == session_id
    assert session["name"] == "What is 12 * 7?"
    assert session["runCount"] == 1
    assert session["agent"]["id"] == "calculator"


async def test_session_history_operation_pages_back_from_the_newest(server: RunningServer, token: str) -> None:
    session_id = await chat(server, token, "first question", "second question")
    newest = await execute(server, token, operation("SessionHistory"), {"id": session_id, "last": 2})
    messages = newest["session"]["messages"]
    assert messages["totalCount"] == 4
    assert [edge["node"]["content"] for edge in messages["edges"]] == ["second question", "You said: second question"]
    assert messages["pageInfo"]["hasPreviousPage"] is True
    before = messages["pageInfo"]["startCursor"]
    older = await execute(server, token, operation("SessionHistory"), {"id": session_id, "last": 2, "before": before})
    messages = older["session"]["messages"]
    assert [edge["node"]["role"] for edge in messages["edges"]] == ["USER", "ASSISTANT"]
    assert [edge["node"]["content"] for edge in messages["edges"]] == ["first question", "You said: first question"]
    assert messages["pageInfo"]["hasPreviousPage"] is False


async def test_session_runs_operation_lists_runs_in_order(server: RunningServer, token: str) -> None:
    session_id = await chat(server, token, "one", "two")
    result = await execute(server, token, operation("SessionRuns"), {"id": session_id, "first": 10})
    runs = result["session"]["runs"]
    assert runs["totalCount"] == 2
    assert [run["input"] for run in runs["nodes"]] == ["one", "two"]
    assert [run["status"] for run in runs["nodes"]] == ["COMPLETED", "COMPLETED"]
    assert {run["sessionId"] for run in runs["nodes"]} == {session_id}
    assert [run["requirements"] for run in runs["nodes"]] == [[], []]


async def test_run_agent_subscription_streams_a_tool_run(server: RunningServer, user_id: str) -> None:
    events = await run(server, make_token(user_id), "calculator", "What is 12 * 7?", None)
    kinds = [event["__typename"] for event in events]
    assert kinds[0] == "RunStarted"
    assert kinds[-1] == "RunCompleted"
    assert {"ToolCallStarted", "ToolCallCompleted", "RunContentDelta"} <= set(kinds)
    assert set(kinds) <= RUN_EVENT_TYPES
    completed_tool = next(event for event in events if event["__typename"] == "ToolCallCompleted")
    assert completed_tool["toolCall"]["name"] == "multiply"
    assert completed_tool["result"] == "84"
    assert events[-1]["content"] == "The answer is 84."
    assert len({event["sessionId"] for event in events}) == 1

"""The canary of agno_graphql/compat/: every private or undocumented part of graphql-core, Strawberry and Agno the
server leans on is there, with the shape it is used with. After `make lock` brings new versions, a part that moved
fails here, by name, instead of somewhere far from its cause."""

from __future__ import annotations

import asyncio
import importlib
import inspect
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import strawberry
from agno.db.mysql import AsyncMySQLDb
from agno.db.sqlite import AsyncSqliteDb
from agno.models import base as agno_model_base
from agno.run import background
from graphql import GraphQLSchema
from graphql.execution import collect_fields
from graphql.pyutils import gather_with_cancel
from strawberry.asgi import GraphQL
from strawberry.http.streaming import HTTPStreamTransport
from strawberry.schema.exceptions import InvalidOperationTypeError
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.subscriptions import GRAPHQL_SSE_PROTOCOL
from strawberry.types.graphql import OperationType

from agno_graphql.compat.agno_parts import AGNO_MEDIA_HANDOFF_TEXT
from agno_graphql.compat.strawberry_parts import UNSUPPORTED_CONTENT_TYPE, graphql_core_schema, refused_operation_over


def parameters(function: Callable[..., Any]) -> list[str]:
    return [name for name in inspect.signature(function).parameters if name != "self"]


@pytest.mark.parametrize(
    ("method", "expected"),
    [
        ("execute_fields", ["parent_type", "source_value", "path", "grouped_field_set", "position_context"]),
        ("execute_field", ["parent_type", "source", "field_details_list", "path", "position_context"]),
        (
            "execute_collected_root_fields",
            ["root_type", "root_value", "grouped_field_set", "serially", "new_defer_usages"],
        ),
        (
            "complete_iterable_value",
            ["item_type", "field_details_list", "info", "path", "items", "position_context"],
        ),
        ("collect_subfields", ["return_type", "field_details_list"]),
        ("get_stream_usage", ["field_details_list", "path"]),
        ("settle_in_background", ["awaitables"]),
    ],
)
def test_graphql_core_execution_methods_the_executor_overrides_or_calls_keep_their_shape(
    method: str, expected: list[str]
) -> None:
    assert parameters(getattr(StrawberryGraphQLCoreExecutionContext, method)) == expected


def test_graphql_core_collects_fields_into_the_types_the_executor_reads() -> None:
    assert hasattr(collect_fields, "FieldDetailsList")
    assert hasattr(collect_fields, "GroupedFieldSet")
    assert callable(gather_with_cancel)


@strawberry.type
class _Query:
    name: str = "a"

    @strawberry.field
    def title(self) -> str:
        return "t"


def test_strawberry_marks_a_basic_fields_resolver_and_keeps_the_parts_the_executor_reads() -> None:
    schema = strawberry.Schema(query=_Query)
    graphql_schema = schema._schema
    name_field = graphql_schema.query_type.fields["name"]  # type: ignore[union-attr]
    assert getattr(name_field.resolve, "_is_default", False) is True
    assert name_field.resolve.__name__ == "_get_basic_result"
    definition = name_field.extensions["strawberry-definition"]
    assert definition.is_basic_field and definition.default_resolver is getattr and definition.python_name == "name"
    title = graphql_schema.query_type.fields["title"].extensions["strawberry-definition"]  # type: ignore[union-attr]
    resolver = title.base_resolver
    for attribute in ("wrapped_func", "info_parameter", "self_parameter", "root_parameter", "parent_parameter"):
        assert hasattr(resolver, attribute), attribute
    assert isinstance(schema.schema_converter._exception_handler_specs, list | tuple | dict)
    info = schema.config.info_class(_raw_info=None, _field=title)  # type: ignore[arg-type]
    assert info._raw_info is None


def test_strawberry_keeps_graphql_cores_schema_behind_its_own() -> None:
    schema = strawberry.Schema(query=_Query)
    graphql_schema = graphql_core_schema(schema)
    assert isinstance(graphql_schema, GraphQLSchema)
    assert graphql_schema.query_type is not None and graphql_schema.query_type.fields


def test_strawberry_picks_stream_transports_in_the_hook_the_app_overrides() -> None:
    assert parameters(GraphQL._get_stream_transport_from_headers) == ["headers"]
    view = GraphQL(strawberry.Schema(query=_Query), subscription_protocols=(GRAPHQL_SSE_PROTOCOL,))
    transports = view._stream_transport_map
    assert transports and all(isinstance(transport, HTTPStreamTransport) for transport in transports.values())


def test_strawberry_refusal_reasons_are_the_texts_the_guard_tells_apart() -> None:
    reason = InvalidOperationTypeError(OperationType.MUTATION).as_http_error_reason("GET")
    assert refused_operation_over(reason, "GET") == OperationType.MUTATION
    subscription = InvalidOperationTypeError(OperationType.SUBSCRIPTION).as_http_error_reason("POST")
    assert refused_operation_over(subscription, "POST") == OperationType.SUBSCRIPTION
    source = inspect.getsource(inspect.getmodule(GraphQL.__mro__[1]) or GraphQL)
    assert f'"{UNSUPPORTED_CONTENT_TYPE}"' in source


@pytest.mark.parametrize("db_class", [AsyncMySQLDb, AsyncSqliteDb])
def test_agno_sql_databases_keep_their_table_helpers(db_class: type[Any]) -> None:
    assert parameters(db_class._get_table) == ["table_type", "create_table_if_not_found"]
    assert parameters(db_class._invalidate_table_cache) == ["table_name"]
    assert parameters(db_class._resolve_table)[:3] == ["table_name", "table_type", "create_table_if_not_found"]
    assert inspect.iscoroutinefunction(db_class._get_table) and inspect.iscoroutinefunction(db_class._resolve_table)


def test_agno_keeps_its_background_run_tasks_in_a_set() -> None:
    assert isinstance(background._background_tasks, set)
    assert all(isinstance(task, asyncio.Task) for task in tuple(background._background_tasks))


def test_agno_hands_a_tools_media_to_the_model_in_a_user_message_with_the_text_history_leaves_out() -> None:
    source = inspect.getsource(agno_model_base)
    assert f'content="{AGNO_MEDIA_HANDOFF_TEXT}"' in source


def test_the_openai_sdk_casts_each_streamed_chunk_in_the_client_method_the_lean_client_overrides() -> None:
    from openai import AsyncOpenAI
    from openai import BaseModel as SdkModel
    from openai._streaming import AsyncStream
    from openai.types.chat import ChatCompletionChunk
    from pydantic import BaseModel

    assert parameters(AsyncOpenAI._process_response_data) == ["data", "cast_to", "response"]
    assert "self._client._process_response_data" in inspect.getsource(AsyncStream.__stream__)
    # The SDK's models replace pydantic's model_construct with their own cast; pydantic's is one step up.
    assert issubclass(ChatCompletionChunk, SdkModel) and SdkModel.__mro__[1] is BaseModel


def test_agno_openai_models_give_their_client_options_in_the_method_the_lean_client_reads() -> None:
    from agno.models.openai.like import OpenAILike

    params = OpenAILike(id="m", base_url="http://127.0.0.1:9/v1", api_key="k", timeout=3)._get_client_params()
    assert {"api_key": "k", "base_url": "http://127.0.0.1:9/v1", "timeout": 3}.items() <= params.items()


def test_graphql_core_builds_each_subscription_events_executor_and_only_runs_its_operation() -> None:
    """The plain event path hands graphql-core a finished result in place of the per-event executor."""
    execute = importlib.import_module("graphql.execution.execute")
    mapping = inspect.getsource(execute.map_source_to_response_event)
    assert "build_executor = executor.build_per_event_executor" in mapping
    assert "root_selection_set_executor(build_executor(payload))" in mapping
    body = inspect.getsource(execute.execute_subscription_event).split('"""')[-1]
    assert [line.strip() for line in body.strip().splitlines()] == [
        'return cast("AwaitableOrValue[ExecutionResult]", executor.execute_operation(False))'
    ]
    assert parameters(StrawberryGraphQLCoreExecutionContext.build_per_event_executor) == ["payload"]
    # Strawberry resolves each event of a subscription field to itself.
    field = graphql_core_schema(strawberry.Schema(query=_TicksQuery, subscription=_Ticks)).subscription_type
    assert field is not None
    resolve = field.fields["ticks"].resolve
    assert resolve is not None and resolve.__name__ == "<lambda>" and resolve("event", None) == "event"


@strawberry.type
class _TicksQuery:
    ok: bool = True


@strawberry.type
class _Ticks:
    @strawberry.subscription
    async def ticks(self) -> AsyncIterator[int]:
        yield 1

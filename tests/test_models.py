"""Choosing the model by setting, and what the offline demo model decides to do."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from agno.models.message import Message

from agno_graphql.agents.offline import plan_reply
from agno_graphql.app import build_services
from agno_graphql.settings import SettingsError
from tests.client import execute
from tests.conftest import make_token, server_settings, start_server

AGENTS = "{ agents { id model { provider id } } }"
CALCULATOR_TOOLS = [
    {"type": "function", "function": {"name": name}} for name in ("add", "subtract", "multiply", "divide")
]


async def test_an_installed_provider_is_chosen_by_provider_and_model_id(
    new_database_url: Callable[[str], str], tmp_path: Path, user_id: str
) -> None:
    """No request is made to the provider here: listing agents only shows which model they run on."""
    running = start_server(server_settings(new_database_url("openai"), tmp_path, model="openai:gpt-4o-mini"))
    try:
        listed = await execute(running, make_token(user_id), AGENTS)
    finally:
        running.stop()
    assert {agent["id"]: agent["model"] for agent in listed["agents"]} == {
        "assistant": {"provider": "openai", "id": "gpt-4o-mini"},
        "calculator": {"provider": "openai", "id": "gpt-4o-mini"},
        "helpdesk": {"provider": "openai", "id": "gpt-4o-mini"},
    }


@pytest.mark.parametrize("model", ["gpt-4o", "nosuchprovider:some-model"])
def test_a_model_setting_that_names_no_model_is_a_settings_error(
    new_database_url: Callable[[str], str], tmp_path: Path, model: str
) -> None:
    with pytest.raises(SettingsError, match="AGNO_GRAPHQL_MODEL"):
        build_services(server_settings(new_database_url("badmodel"), tmp_path, model=model))


def _user(text: str) -> list[Message]:
    return [Message(role="user", content=text)]


@pytest.mark.parametrize(
    ("question", "tool", "arguments"),
    [
        ("What is 12 * 7?", "multiply", {"a": 12, "b": 7}),
        ("what's 3 + 4", "add", {"a": 3, "b": 4}),
        ("10 - -2 please", "subtract", {"a": 10, "b": -2}),
        ("How much is 7.5 / 2.5?", "divide", {"a": 7.5, "b": 2.5}),
    ],
)
def test_offline_model_calls_the_matching_tool_for_arithmetic(question: str, tool: str, arguments: dict) -> None:
    plan = plan_reply(_user(question), CALCULATOR_TOOLS)
    assert plan.tool_call is not None
    assert plan.tool_call["function"]["name"] == tool
    assert json.loads(plan.tool_call["function"]["arguments"]) == arguments


def test_offline_model_without_the_tool_restates_the_question() -> None:
    plan = plan_reply(_user("What is 12 * 7?"), [])
    assert plan.tool_call is None and plan.text == "You said: What is 12 * 7?"


def test_offline_model_answers_with_the_tool_result() -> None:
    messages = [*_user("What is 12 * 7?"), Message(role="tool", content="84", tool_call_id="call_1")]
    assert plan_reply(messages, CALCULATOR_TOOLS).text == "The answer is 84."


def _sdk_cast(data: dict[str, Any]) -> Any:
    from openai import AsyncOpenAI
    from openai.types.chat import ChatCompletionChunk

    client = AsyncOpenAI(api_key="unused", base_url="http://127.0.0.1:9/v1")
    return client._process_response_data(data=data, cast_to=ChatCompletionChunk, response=None)


def _chunk(delta: dict[str, Any], **fields: Any) -> dict[str, Any]:
    choice = {"index": 0, "delta": delta, "finish_reason": fields.pop("finish_reason", None)}
    choice.update(fields.pop("choice", {}))
    base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1700000000, "model": "m"}
    return {**base, "choices": [choice], **fields}


PLAIN_CHUNKS = [
    _chunk({"content": "Hello "}),
    _chunk({"role": "assistant", "content": ""}),
    _chunk({"content": None}, finish_reason="stop"),
    _chunk({"content": "x", "refusal": None}, system_fingerprint="fp_1", service_tier="default", usage=None),
    _chunk({"content": "y"}, choice={"logprobs": None}, obfuscation="abc"),
]
# Chunks the lean cast leaves to the SDK: anything beyond a role and text, or a field it does not know.
OTHER_CHUNKS = [
    _chunk({"tool_calls": [{"index": 0, "id": "call_1", "function": {"name": "add", "arguments": "{}"}}]}),
    _chunk({"content": "x", "reasoning_content": "thinking"}),
    _chunk({"content": "x"}, extra_field=1),
    _chunk({"content": "x"}, choice={"logprobs": {"content": []}}),
    _chunk({"content": 5}),
    {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [],
        "usage": {"total_tokens": 3},
    },
    {**_chunk({"content": "a"}), "choices": [{"index": 0, "delta": {"content": "a"}}] * 2},
]


@pytest.mark.parametrize("data", PLAIN_CHUNKS)
def test_a_plain_content_chunk_is_cast_lean_to_what_the_sdk_makes_and_agno_reads_the_same(data: dict[str, Any]) -> None:
    from agno.models.openai.like import OpenAILike

    from agno_graphql.compat.openai_parts import plain_chunk

    lean, sdk = plain_chunk(data), _sdk_cast(data)
    assert lean is not None
    assert type(lean) is type(sdk) and lean == sdk
    assert lean.model_fields_set == sdk.model_fields_set and lean.model_extra == sdk.model_extra
    assert type(lean.choices[0].delta) is type(sdk.choices[0].delta)
    assert lean.choices[0].model_fields_set == sdk.choices[0].model_fields_set
    parse = OpenAILike(id="m")._parse_provider_response_delta
    assert parse(lean) == parse(sdk)


@pytest.mark.parametrize("data", OTHER_CHUNKS)
def test_any_other_chunk_goes_the_sdks_way_with_what_it_keeps(data: dict[str, Any]) -> None:
    from agno_graphql.compat.openai_parts import LeanChunkClient, plain_chunk

    assert plain_chunk(data) is None
    lean_client = LeanChunkClient(api_key="unused", base_url="http://127.0.0.1:9/v1")
    from openai.types.chat import ChatCompletionChunk

    cast = lean_client._process_response_data(data=data, cast_to=ChatCompletionChunk, response=None)
    assert cast == _sdk_cast(data) and cast.model_extra == _sdk_cast(data).model_extra


def test_the_model_for_an_openai_compatible_url_reads_its_stream_with_the_lean_client() -> None:
    from agno_graphql.agents.models import CompatibleModel, build_model
    from agno_graphql.compat.openai_parts import LeanChunkClient
    from agno_graphql.settings import Settings

    model = build_model(Settings(model="served-model", model_base_url="http://127.0.0.1:9/v1"))
    assert isinstance(model, CompatibleModel)
    client = model.get_async_client()
    assert isinstance(client, LeanChunkClient) and model.get_async_client() is client
    assert str(client.base_url).rstrip("/") == "http://127.0.0.1:9/v1" and client.timeout == model.timeout

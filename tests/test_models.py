"""Choosing the model by setting, and what the offline demo model decides to do."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

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

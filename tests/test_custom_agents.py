"""A user's own agents instead of the built-ins: AGNO_GRAPHQL_AGENTS=package.module:attribute.

The agents come from `tests/example_agents.py`, as a factory (`make_agents`) and as a list (`AGENTS`).
They have no model and no database: the server gives them its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.client import execute, run_agent
from tests.conftest import RunningServer, make_token, start_server
from tests.conftest import server_settings as settings_for
from tests.example_agents import ECHO_INSTRUCTIONS
from tests.openai_stub import serve_stub

FACTORY = "tests.example_agents:make_agents"
LIST = "tests.example_agents:AGENTS"
OFFLINE_MODEL = {"provider": "offline", "id": "offline-demo"}
SHOUT_PARAMETERS = {
    "type": "object",
    "properties": {"text": {"type": "string", "description": "The text to shout."}},
    "required": ["text"],
}

AGENTS = """
query {
  agents {
    id name description instructions
    model { provider id }
    tools { name description parameters }
  }
}
"""
AGENT = "query One($id: ID!) { agent(id: $id) { id } }"
HISTORY = """
query History($id: ID!) {
  session(id: $id) { agentId messages(last: 10) { nodes { role content } } }
}
"""

MakeServer = Callable[..., RunningServer]


@pytest.fixture
def make_server(
    new_database_url: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MakeServer]:
    """Starts servers with the given settings overrides (on a fresh database unless one is given), stops them after."""
    started: list[RunningServer] = []

    def make(database_url: str | None = None, **overrides: object) -> RunningServer:
        url = database_url or new_database_url("custom")
        running = start_server(settings_for(url, tmp_path_factory.mktemp("custom-state"), **overrides))
        started.append(running)
        return running

    yield make
    for running in started:
        running.stop()


async def test_factory_agents_replace_the_builtins(make_server: MakeServer, user_id: str) -> None:
    running = make_server(agents=FACTORY)
    token = make_token(user_id)

    listed = await execute(running, token, AGENTS)
    builtin = await execute(running, token, AGENT, {"id": "assistant"})

    assert [agent["id"] for agent in listed["agents"]] == ["echo"]
    assert builtin["agent"] is None


async def test_custom_agent_is_described_with_its_tool_schema(make_server: MakeServer, user_id: str) -> None:
    running = make_server(agents=FACTORY)

    (echo,) = (await execute(running, make_token(user_id), AGENTS))["agents"]

    assert echo["name"] == "Echo"
    assert echo["description"] == "Repeats what it is told."
    assert echo["instructions"] == ECHO_INSTRUCTIONS
    (shout,) = echo["tools"]
    assert shout["name"] == "shout"
    assert shout["description"].startswith("Return the text in capital letters")
    assert shout["parameters"] == SHOUT_PARAMETERS


async def test_custom_agent_without_a_model_gets_the_configured_model(make_server: MakeServer, user_id: str) -> None:
    running = make_server(agents=FACTORY)
    token = make_token(user_id)

    (echo,) = (await execute(running, token, AGENTS))["agents"]
    events = await run_agent(running, token, "echo", "hi there")

    assert echo["model"] == OFFLINE_MODEL
    assert events[0]["model"] == OFFLINE_MODEL


async def test_custom_agent_runs_on_a_configured_provider_with_its_tools(make_server: MakeServer, user_id: str) -> None:
    with serve_stub() as stub:
        running = make_server(agents=FACTORY, model="stub-model", model_base_url=stub.base_url, model_api_key="k")
        events = await run_agent(running, make_token(user_id), "echo", "hello provider")
        running.stop()
        (request,) = stub.received()

    assert events[0]["model"] == {"provider": "openai", "id": "stub-model"}
    assert events[-1]["__typename"] == "RunCompleted"
    assert events[-1]["content"] == "Echo: hello provider"
    (tool,) = request["tools"]
    assert tool["function"]["name"] == "shout"
    assert tool["function"]["parameters"] == SHOUT_PARAMETERS
    system = next(m["content"] for m in request["messages"] if m["role"] == "system")
    assert all(instruction in system for instruction in ECHO_INSTRUCTIONS)


async def test_custom_agent_run_is_stored_in_the_servers_database(make_server: MakeServer, user_id: str) -> None:
    running = make_server(agents=FACTORY)
    token = make_token(user_id)
    events = await run_agent(running, token, "echo", "remember me")
    session_id = events[0]["sessionId"]
    running.stop()

    restarted = make_server(database_url=running.settings.database_url, agents=FACTORY)
    history = await execute(restarted, token, HISTORY, {"id": session_id})

    assert events[-1]["content"] == "You said: remember me"
    assert history["session"]["agentId"] == "echo"
    assert history["session"]["messages"]["nodes"] == [
        {"role": "USER", "content": "remember me"},
        {"role": "ASSISTANT", "content": "You said: remember me"},
    ]


async def test_list_of_agents_works_like_the_factory(make_server: MakeServer, user_id: str) -> None:
    running = make_server(agents=LIST)
    token = make_token(user_id)

    listed = await execute(running, token, AGENTS)
    events = await run_agent(running, token, "echo", "from the list")

    assert [agent["id"] for agent in listed["agents"]] == ["echo"]
    assert listed["agents"][0]["tools"][0]["parameters"] == SHOUT_PARAMETERS
    assert events[-1]["__typename"] == "RunCompleted"
    assert events[-1]["content"] == "You said: from the list"


async def test_list_of_agents_gets_each_servers_model(make_server: MakeServer, user_id: str) -> None:
    """The module's Agent objects are shared by every server built from them; each must still get its own model."""
    token = make_token(user_id)
    first = make_server(agents=LIST)
    first_listed = await execute(first, token, AGENTS)
    with serve_stub() as stub:
        second = make_server(agents=LIST, model="stub-model", model_base_url=stub.base_url, model_api_key="k")
        second_listed = await execute(second, token, AGENTS)
        first_again = await execute(first, token, AGENTS)

    assert first_listed["agents"][0]["model"] == OFFLINE_MODEL
    assert second_listed["agents"][0]["model"] == {"provider": "openai", "id": "stub-model"}
    assert first_again["agents"][0]["model"] == OFFLINE_MODEL


async def test_list_of_agents_store_runs_in_each_servers_database(make_server: MakeServer, user_id: str) -> None:
    token = make_token(user_id)
    first = make_server(agents=LIST)
    make_server(agents=LIST)
    events = await run_agent(first, token, "echo", "which database?")

    history = await execute(first, token, HISTORY, {"id": events[0]["sessionId"]})

    assert history["session"] is not None
    assert [m["role"] for m in history["session"]["messages"]["nodes"]] == ["USER", "ASSISTANT"]

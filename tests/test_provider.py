"""The real-provider path: agents on Agno's OpenAILike model, streaming from an OpenAI-compatible server.

The server is `tests/openai_stub.py` on a loopback port, set up the way a user points agno-graphql at
Ollama, vLLM or llama.cpp: AGNO_GRAPHQL_MODEL=<model id> with AGNO_GRAPHQL_MODEL_BASE_URL and
AGNO_GRAPHQL_MODEL_API_KEY.
"""

from __future__ import annotations

import asyncio
import base64
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from gql import Client, gql

from agno_graphql.db.database import Database
from agno_graphql.db.unfinished import store_started
from agno_graphql.records import RunStart
from tests.attachment_support import MP3, RUN_WITH, png, upload
from tests.client import RUN_AGENT, execute, operation, run_agent, subscribe, ws_transport
from tests.conftest import RunningServer, make_token, start_server
from tests.conftest import server_settings as settings_for
from tests.matrix_support import create_session
from tests.openai_stub import PROMPT_TOKENS, Fault, OpenAIStub, history_given, message_text, serve_stub, words
from tests.pause_support import continue_run
from tests.run_support import subscription
from tests.test_regenerate import conversation, edit, fork, regenerate
from tests.test_regenerate import send as send_interrupting_or_not

STUB_MODEL = "stub-model"
STUB_API_KEY = "stub-key"

AGENTS = "query { agents { id model { provider id } } }"
HISTORY = """
query History($id: ID!) {
  session(id: $id) {
    messages(last: 20) { nodes { role content toolCalls { id name arguments } toolCallId toolName } }
  }
}
"""
RUNS = "query Runs($id: ID!) { session(id: $id) { runs(last: 10) { nodes { status content } } } }"


def provider_server(stub: OpenAIStub, database_url: str, state_dir: Any) -> RunningServer:
    settings = settings_for(
        database_url, state_dir, model=STUB_MODEL, model_base_url=stub.base_url, model_api_key=STUB_API_KEY
    )
    return start_server(settings)


@pytest.fixture(scope="module")
def server_on_stub(
    stub: OpenAIStub, new_database_url: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    running = provider_server(stub, new_database_url("prov"), tmp_path_factory.mktemp("prov-state"))
    yield running
    running.stop()


def marked(text: str) -> str:
    """The text with a unique tag, to find this test's requests among those the shared stub received."""
    return f"{text} [ref {uuid.uuid4().hex[:10]}]"


def of_type(events: list[dict[str, Any]], typename: str) -> list[dict[str, Any]]:
    return [event for event in events if event["__typename"] == typename]


async def test_reply_streams_from_the_provider_as_deltas(server_on_stub: RunningServer, user_id: str) -> None:
    events = await run_agent(server_on_stub, make_token(user_id), "assistant", "hello")

    assert events[0]["__typename"] == "RunStarted" and events[-1]["__typename"] == "RunCompleted"
    assert [event["index"] for event in events] == list(range(len(events)))
    deltas = [event["delta"] for event in of_type(events, "RunContentDelta")]
    assert deltas == words("Echo: hello")
    assert "".join(deltas) == events[-1]["content"] == "Echo: hello"


async def test_run_and_agents_report_the_configured_model(server_on_stub: RunningServer, token: str) -> None:
    listed = await execute(server_on_stub, token, AGENTS)
    events = await run_agent(server_on_stub, token, "assistant", "which model?")

    expected = {"provider": "openai", "id": STUB_MODEL}
    assert {agent["id"]: agent["model"] for agent in listed["agents"]} == {
        "assistant": expected,
        "calculator": expected,
        "helpdesk": expected,
    }
    assert events[0]["model"] == expected


async def test_provider_usage_becomes_the_run_metrics(server_on_stub: RunningServer, user_id: str) -> None:
    events = await run_agent(server_on_stub, make_token(user_id), "assistant", "count my tokens")

    output_tokens = len(words("Echo: count my tokens"))
    metrics = events[-1]["metrics"]
    assert metrics["inputTokens"] == PROMPT_TOKENS
    assert metrics["outputTokens"] == output_tokens
    assert metrics["totalTokens"] == PROMPT_TOKENS + output_tokens


async def test_provider_tool_call_runs_the_tool_and_answers(server_on_stub: RunningServer, user_id: str) -> None:
    events = await run_agent(server_on_stub, make_token(user_id), "calculator", "What is 12 * 7?")

    kinds = [event["__typename"] for event in events]
    assert kinds[0] == "RunStarted" and kinds[-1] == "RunCompleted"
    assert kinds.index("ToolCallStarted") < kinds.index("ToolCallCompleted") < kinds.index("RunContentDelta")
    (started,) = of_type(events, "ToolCallStarted")
    (completed,) = of_type(events, "ToolCallCompleted")
    assert started["toolCall"]["name"] == "multiply"
    assert started["toolCall"]["arguments"] == {"a": 12, "b": 7}
    assert completed["toolCall"] == started["toolCall"]
    assert completed["result"] == "84" and completed["failed"] is False
    deltas = "".join(event["delta"] for event in of_type(events, "RunContentDelta"))
    assert deltas == events[-1]["content"] == "The answer is 84."


async def test_provider_tool_exchange_is_stored_in_the_history(server_on_stub: RunningServer, token: str) -> None:
    events = await run_agent(server_on_stub, token, "calculator", "What is 12 * 7?")
    call_id = of_type(events, "ToolCallStarted")[0]["toolCall"]["id"]

    history = await execute(server_on_stub, token, HISTORY, {"id": events[0]["sessionId"]})
    messages = history["session"]["messages"]["nodes"]
    assert [message["role"] for message in messages] == ["USER", "ASSISTANT", "TOOL", "ASSISTANT"]
    assert messages[0]["content"] == "What is 12 * 7?"
    assert messages[1]["toolCalls"] == [{"id": call_id, "name": "multiply", "arguments": {"a": 12, "b": 7}}]
    assert messages[2]["content"] == "84"
    assert (messages[2]["toolCallId"], messages[2]["toolName"]) == (call_id, "multiply")
    assert messages[3]["content"] == "The answer is 84."


async def test_provider_receives_the_tools_json_schemas(
    server_on_stub: RunningServer, stub: OpenAIStub, user_id: str
) -> None:
    question = marked("What is 12 * 7?")
    await run_agent(server_on_stub, make_token(user_id), "calculator", question)

    first = stub.requests_mentioning(question)[0]
    assert first["model"] == STUB_MODEL and first["stream"] is True
    tools = {tool["function"]["name"]: tool for tool in first["tools"]}
    assert set(tools) == {"add", "subtract", "multiply", "divide"}
    multiply = tools["multiply"]
    assert multiply["type"] == "function"
    assert multiply["function"]["description"].startswith("Multiply two numbers")
    parameters = multiply["function"]["parameters"]
    assert parameters["type"] == "object"
    assert set(parameters["properties"]) == {"a", "b"}
    assert all(parameters["properties"][name]["type"] == "number" for name in ("a", "b"))
    assert sorted(parameters["required"]) == ["a", "b"]


async def test_provider_receives_the_tool_result(server_on_stub: RunningServer, stub: OpenAIStub, user_id: str) -> None:
    question = marked("What is 12 * 7?")
    events = await run_agent(server_on_stub, make_token(user_id), "calculator", question)
    call_id = of_type(events, "ToolCallStarted")[0]["toolCall"]["id"]

    requests = stub.requests_mentioning(question)
    assert len(requests) == 2
    follow_up = requests[1]["messages"]
    assert [message["role"] for message in follow_up][-3:] == ["user", "assistant", "tool"]
    assert follow_up[-2]["tool_calls"][0]["id"] == call_id
    assert follow_up[-2]["tool_calls"][0]["function"]["name"] == "multiply"
    assert follow_up[-1]["tool_call_id"] == call_id
    assert message_text(follow_up[-1]) == "84"


async def test_provider_receives_the_earlier_turns_of_the_session(
    server_on_stub: RunningServer, stub: OpenAIStub, token: str
) -> None:
    first_message = marked("my name is Ada")
    first = await run_agent(server_on_stub, token, "assistant", first_message)
    second_message = marked("what is my name?")
    await run_agent(server_on_stub, token, "assistant", second_message, session_id=first[0]["sessionId"])

    (request,) = stub.requests_mentioning(second_message)
    turns = [(m["role"], message_text(m)) for m in request["messages"] if m["role"] != "system"]
    assert turns == [("user", first_message), ("assistant", f"Echo: {first_message}"), ("user", second_message)]


async def test_history_lists_each_turn_once_when_earlier_turns_are_replayed(
    server_on_stub: RunningServer, token: str
) -> None:
    first = await run_agent(server_on_stub, token, "calculator", "What is 12 * 7?")
    session_id = first[0]["sessionId"]
    await run_agent(server_on_stub, token, "calculator", "thanks", session_id=session_id)
    await run_agent(server_on_stub, token, "calculator", "bye", session_id=session_id)

    history = await execute(server_on_stub, token, HISTORY, {"id": session_id})
    messages = [(m["role"], m["content"]) for m in history["session"]["messages"]["nodes"]]
    assert messages == [
        ("USER", "What is 12 * 7?"),
        ("ASSISTANT", None),
        ("TOOL", "84"),
        ("ASSISTANT", "The answer is 84."),
        ("USER", "thanks"),
        ("ASSISTANT", "Echo: thanks"),
        ("USER", "bye"),
        ("ASSISTANT", "Echo: bye"),
    ]


async def test_provider_error_fails_the_run_and_the_socket_keeps_working(
    new_database_url: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory, token: str
) -> None:
    variables = {"input": {"agentId": "assistant", "message": "are you there?"}}
    with serve_stub() as failing_stub:
        running = provider_server(failing_stub, new_database_url("prov-fail"), tmp_path_factory.mktemp("fail-state"))
        try:
            client = Client(transport=ws_transport(running, token), fetch_schema_from_transport=False)
            async with client as session:
                failing_stub.fail_status = 500
                failed = [r["runAgent"] async for r in session.subscribe(gql(RUN_AGENT), variable_values=variables)]
                failing_stub.fail_status = None
                recovered = [r["runAgent"] async for r in session.subscribe(gql(RUN_AGENT), variable_values=variables)]
        finally:
            running.stop()

    assert failed[0]["__typename"] == "RunStarted"
    assert failed[-1]["__typename"] == "RunFailed"
    assert failed[-1]["code"] == "MODEL_UNAVAILABLE" and failed[-1]["message"].strip()
    assert [event["__typename"] for event in failed].count("RunFailed") == 1
    assert recovered[-1]["__typename"] == "RunCompleted"
    assert recovered[-1]["content"] == "Echo: are you there?"


async def test_provider_error_is_stored_as_a_failed_run(
    new_database_url: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory, token: str
) -> None:
    with serve_stub() as failing_stub:
        failing_stub.fail_status = 500
        running = provider_server(failing_stub, new_database_url("prov-err"), tmp_path_factory.mktemp("err-state"))
        try:
            events = await run_agent(running, token, "assistant", "anyone?")
            runs = await execute(running, token, RUNS, {"id": events[0]["sessionId"]})
        finally:
            running.stop()

    assert events[-1]["__typename"] == "RunFailed"
    assert [run["status"] for run in runs["session"]["runs"]["nodes"]] == ["ERROR"]


async def test_provider_call_to_a_confirmation_tool_pauses_then_continues(
    server_on_stub: RunningServer, stub: OpenAIStub, token: str
) -> None:
    question = marked("please restart the web service")
    variables = {"input": {"agentId": "helpdesk", "message": question}}
    events = [r["runAgent"] for r in await subscribe(server_on_stub, token, operation("RunAgent"), variables)]
    paused = events[-1]
    assert paused["__typename"] == "RunPaused" and not of_type(events, "ToolCallCompleted")
    [requirement] = paused["requirements"]
    assert (requirement["kind"], requirement["toolCall"]["name"]) == ("CONFIRMATION", "restart_service")
    assert requirement["toolCall"]["arguments"] == {"service": "web"}
    answer = {"requirementId": requirement["id"], "confirmed": True}
    rest = await continue_run(server_on_stub, token, paused["runId"], [answer])
    assert rest[0]["__typename"] == "RunContinued"
    [completed] = of_type(rest, "ToolCallCompleted")
    assert completed["result"] == "The web service was restarted." and completed["failed"] is False
    assert rest[-1]["content"] == "The answer is The web service was restarted.."
    # The provider was asked again with the tool's result, after the confirmation.
    followed = [r for r in stub.requests_mentioning(question) if r["messages"][-1]["role"] == "tool"]
    assert [message_text(r["messages"][-1]) for r in followed] == ["The web service was restarted."]


async def test_instructions_reach_the_model_for_that_answer_only(
    server_on_stub: RunningServer, stub: OpenAIStub, token: str
) -> None:
    session_id = str((await create_session(server_on_stub, token))["id"])
    question, later_question = marked("regenerate-me please"), marked("and-then-this")
    first = await run_agent(server_on_stub, token, "assistant", question, session_id)
    hint = marked("Answer in one short sentence, in French.")
    again = await regenerate(server_on_stub, token, first[-1]["runId"], instructions=hint)
    assert again[-1]["__typename"] == "RunCompleted"
    with_hint = stub.requests_mentioning(hint)
    assert len(with_hint) == 1
    said = [message_text(m) for m in with_hint[0]["messages"]]
    # The old answer is not in the history the model got, and the hint comes just before the user's message.
    assert f"Echo: {question}" not in said
    assert said[-2:] == [hint, question]
    await run_agent(server_on_stub, token, "assistant", later_question, session_id)
    later = stub.requests_mentioning(later_question)[-1]
    assert hint not in [message_text(m) for m in later["messages"]]
    assert history_given(later) == [
        question,
        f"Echo: {question}",
        later_question,
    ]
    seen = await conversation(server_on_stub, token, session_id)
    assert hint not in [m["content"] for m in seen["messages"]["nodes"]]


async def test_an_edited_message_is_answered_with_the_history_before_it_only(
    server_on_stub: RunningServer, stub: OpenAIStub, token: str
) -> None:
    session_id = str((await create_session(server_on_stub, token))["id"])
    one, two, three, better = (marked(text) for text in ("edit-one", "edit-two", "edit-three", "edit-two-better"))
    for text in (one, two, three):
        await run_agent(server_on_stub, token, "assistant", text, session_id)
    seen = await conversation(server_on_stub, token, session_id)
    two_id = next(m["id"] for m in seen["messages"]["nodes"] if m["content"] == two)
    events = await edit(server_on_stub, token, two_id, better)
    assert events[-1]["content"] == f"Echo: {better}"
    assert stub.history_mentioning(better) == [one, f"Echo: {one}", better]


async def test_a_fork_gives_the_model_the_copied_conversation(
    server_on_stub: RunningServer, stub: OpenAIStub, token: str
) -> None:
    session_id = str((await create_session(server_on_stub, token))["id"])
    before, after = marked("fork-before"), marked("fork-after")
    await run_agent(server_on_stub, token, "assistant", before, session_id)
    forked = await fork(server_on_stub, token, session_id)
    await run_agent(server_on_stub, token, "assistant", after, forked["id"])
    assert stub.history_mentioning(after) == [before, f"Echo: {before}", after]


async def test_an_interrupted_answer_stays_in_the_history_the_model_gets(
    server_on_stub: RunningServer, stub: OpenAIStub, token: str
) -> None:
    session_id = str((await create_session(server_on_stub, token))["id"])
    first, second, third = marked("first long question"), marked("second question"), marked("third question")
    stub.fault = Fault.slow(0.3, times=1)
    variables = {"input": {"agentId": "assistant", "sessionId": session_id, "message": first}}
    async with subscription(server_on_stub, token, RUN_AGENT, variables) as running:
        head = await asyncio.wait_for(running.events("runAgent", stop_after=3), timeout=30)
        partial = "".join(e.get("delta") or "" for e in head)
        await send_interrupting_or_not(server_on_stub, token, session_id, second, "INTERRUPT")
    assert partial and f"Echo: {first}".startswith(partial)
    # The run that interrupted, and every later one, get the interrupted question and what was said of it.
    await run_agent(server_on_stub, token, "assistant", third, session_id)
    for later in (second, third):
        asked = stub.requests_mentioning(later)[-1]
        history = history_given(asked)
        assert history[0] == first and history[1] and f"Echo: {first}".startswith(history[1]), history


async def test_runs_stored_unfinished_stay_out_of_the_history_the_model_gets(
    server_on_stub: RunningServer, stub: OpenAIStub, user_id: str, token: str
) -> None:
    """Every run is stored as it starts; Agno reads a session's runs, RUNNING ones too, as the next run starts. Neither
    the run's own row nor another unfinished one (a run whose server died, not yet found) reaches the model."""
    first = marked("the first question")
    session_id = (await run_agent(server_on_stub, token, "assistant", first))[0]["sessionId"]
    ghost = marked("a message whose server died mid-run")
    start = RunStart(
        run_id=str(uuid.uuid4()),
        session_id=session_id,
        user_id=user_id,
        agent_id="assistant",
        message=ghost,
        created_at=time.time(),
    )
    db = Database(server_on_stub.settings.database_url)
    try:
        await store_started(db, start)
    finally:
        await db.dispose()
    second = marked("the second question")
    await run_agent(server_on_stub, token, "assistant", second, session_id)
    assert stub.history_mentioning(second) == [first, f"Echo: {first}", second]


async def test_attachments_reach_the_provider_as_its_parts(
    server_on_stub: RunningServer, stub: OpenAIStub, token: str
) -> None:
    image = await upload(server_on_stub, token, "photo.png", png(6, 4))
    document = await upload(server_on_stub, token, "notes.txt", b"first line\nsecond\n")
    voice = await upload(server_on_stub, token, "voice.mp3", MP3)
    question = marked("describe these")
    ids = [image["id"], document["id"], voice["id"]]
    variables = {"input": {"agentId": "assistant", "message": question, "attachments": ids}}
    events = [e["runAgent"] for e in await subscribe(server_on_stub, token, RUN_WITH, variables)]
    assert events[-1]["__typename"] == "RunCompleted", events[-1]
    (request,) = stub.requests_mentioning(question)
    user = next(m for m in request["messages"] if m["role"] == "user" and question in message_text(m))
    parts = {part["type"]: part for part in user["content"]}
    assert parts["image_url"]["image_url"]["url"] == "data:image/png;base64," + base64.b64encode(png(6, 4)).decode()
    assert parts["file"]["file"] == {
        "filename": "notes.txt",
        "file_data": "data:text/plain;base64," + base64.b64encode(b"first line\nsecond\n").decode(),
    }
    assert parts["input_audio"]["input_audio"] == {"data": base64.b64encode(MP3).decode(), "format": "mp3"}

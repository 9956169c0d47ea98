"""The model provider fails: each way ends the run with RunFailed and its own code, the failed run is stored
with what was streamed before the failure, and the session and the socket go on working.

The provider is `tests/openai_stub.py` with a scripted `Fault`. The server gives up on a silent provider
after MODEL_TIMEOUT_SECONDS and retries a failed request MODEL_MAX_RETRIES times (here 1 s and once).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from gql import Client, gql

from agno_graphql.settings import SettingsError, load_settings
from tests.client import execute, run_agent, ws_transport
from tests.conftest import RunningServer, free_port, make_token, serving_with
from tests.openai_stub import Fault, OpenAIStub, message_text, words
from tests.run_support import follow

STUB_MODEL = "stub-model"
MODEL_TIMEOUT_SECONDS = 1.0
# The provider stays silent this long: well past the timeout, bounded.
SILENCE_SECONDS = 3.0

RUN = """
subscription Run($input: RunAgentInput!) {
  runAgent(input: $input) {
    __typename runId sessionId index
    ... on RunContentDelta { delta }
    ... on RunCompleted { content }
    ... on RunFailed { message code retryAfterSeconds }
  }
}
"""
SESSION = """
query Session($id: ID!) {
  session(id: $id) {
    runs(last: 10) { nodes { status input content } }
    messages(last: 20) { nodes { role content } }
  }
}
"""


@dataclass(frozen=True)
class Case:
    fault: Fault
    code: str
    # Chunks the stub sends before the fault (the first carries only the role), so content streamed before it.
    chunks_before: int = 0
    retry_after_seconds: int | None = None
    # A failed request is retried (MODEL_MAX_RETRIES=1) unless the answer had begun to stream.
    requests: int = 2


CASES = {
    "http-500": Case(Fault.http_status(500), "MODEL_UNAVAILABLE"),
    "http-429-retry-after": Case(Fault.rate_limited("1"), "MODEL_RATE_LIMITED", retry_after_seconds=1),
    "silent-provider": Case(Fault.hang(SILENCE_SECONDS), "MODEL_TIMEOUT"),
    "stream-stalls": Case(Fault.hang(SILENCE_SECONDS, after_chunks=3), "MODEL_TIMEOUT", chunks_before=3, requests=1),
    "stream-cut": Case(Fault.cut(after_chunks=3), "MODEL_UNAVAILABLE", chunks_before=3, requests=1),
    "stream-ends-early": Case(Fault.end_early(after_chunks=3), "MODEL_UNAVAILABLE", chunks_before=3, requests=1),
    "malformed-chunk": Case(Fault.malformed(after_chunks=3), "MODEL_BAD_RESPONSE", chunks_before=3, requests=1),
}


@pytest.fixture(scope="module")
def server_on_stub(
    stub: OpenAIStub, new_database_url: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    with serving_with(
        new_database_url,
        tmp_path_factory,
        "prov-faults",
        model=STUB_MODEL,
        model_base_url=stub.base_url,
        model_api_key="stub-key",
        model_timeout_seconds=MODEL_TIMEOUT_SECONDS,
        model_max_retries=1,
        run_events_retention_seconds=0,
    ) as running:
        yield running


def marked(text: str) -> str:
    """The text with a unique tag, to find this test's requests among those the shared stub received."""
    return f"{text} [ref {uuid.uuid4().hex[:10]}]"


async def run(session: Any, message: str, session_id: str | None = None) -> list[dict[str, Any]]:
    variables = {"input": {"agentId": "assistant", "message": message, "sessionId": session_id}}
    return [result["runAgent"] async for result in session.subscribe(gql(RUN), variable_values=variables)]


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
async def test_provider_fault_fails_the_run_with_its_code_and_the_session_goes_on(
    server_on_stub: RunningServer, stub: OpenAIStub, user_id: str, case: Case
) -> None:
    token = make_token(user_id)
    first_message, failing_message, last_message = marked("my name is Ada"), marked("one two three"), marked("hi")
    client = Client(transport=ws_transport(server_on_stub, token), fetch_schema_from_transport=False)
    async with client as session:
        first = await run(session, first_message)
        session_id = first[0]["sessionId"]
        stub.fault = case.fault
        try:
            failed = await run(session, failing_message, session_id)
        finally:
            stub.fault = None
        last = await run(session, last_message, session_id)
    stored = (await execute(server_on_stub, token, SESSION, {"id": session_id}))["session"]

    partial = "".join(words(f"Echo: {failing_message}")[: max(case.chunks_before - 1, 0)])
    kinds = [event["__typename"] for event in failed]
    assert kinds[0] == "RunStarted" and kinds[-1] == "RunFailed" and kinds.count("RunFailed") == 1
    assert failed[-1]["code"] == case.code and failed[-1]["message"].strip()
    assert failed[-1]["retryAfterSeconds"] == case.retry_after_seconds
    assert "".join(event["delta"] for event in failed if event["__typename"] == "RunContentDelta") == partial
    assert len(stub.requests_mentioning(failing_message)) == case.requests

    assert [event["__typename"] for event in first + last].count("RunCompleted") == 2
    assert last[-1]["content"] == f"Echo: {last_message}"
    runs = stored["runs"]["nodes"]
    assert [(r["status"], r["input"]) for r in runs] == [
        ("COMPLETED", first_message),
        ("ERROR", failing_message),
        ("COMPLETED", last_message),
    ]
    # Agno stores what streamed before the failure; with nothing streamed, the error message.
    assert runs[1]["content"] == (partial or failed[-1]["message"])
    assert ("USER", failing_message) in [(m["role"], m["content"]) for m in stored["messages"]["nodes"]]
    # Told again from the store (the events are kept no time here), the run fails the same way.
    replay = await follow(server_on_stub, token, failed[0]["runId"])
    assert (replay[-1]["__typename"], replay[-1]["code"], replay[-1]["message"]) == (
        "RunFailed",
        case.code,
        failed[-1]["message"],
    )
    # The next run sees the session's history; Agno leaves the failed turn out of it.
    (request,) = stub.requests_mentioning(last_message)
    turns = [(m["role"], message_text(m)) for m in request["messages"] if m["role"] != "system"]
    assert turns == [("user", first_message), ("assistant", f"Echo: {first_message}"), ("user", last_message)]


async def test_one_429_is_retried_after_its_retry_after_and_the_run_completes(
    server_on_stub: RunningServer, stub: OpenAIStub, user_id: str
) -> None:
    message = marked("patience")
    stub.fault = Fault.rate_limited("1", times=1)
    try:
        events = await run_agent(server_on_stub, make_token(user_id), "assistant", message)
    finally:
        stub.fault = None

    assert events[-1]["__typename"] == "RunCompleted"
    assert events[-1]["content"] == f"Echo: {message}"
    assert len(stub.requests_mentioning(message)) == 2


async def test_unreachable_provider_fails_with_model_unavailable(
    new_database_url: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory, user_id: str
) -> None:
    nobody_listens = f"http://127.0.0.1:{free_port()}/v1"
    with serving_with(
        new_database_url,
        tmp_path_factory,
        "prov-down",
        model=STUB_MODEL,
        model_base_url=nobody_listens,
        model_max_retries=0,
    ) as running:
        events = await run_agent(running, make_token(user_id), "assistant", "anyone?")

    assert [event["__typename"] for event in events] == ["RunStarted", "RunFailed"]
    assert events[-1]["code"] == "MODEL_UNAVAILABLE"
    assert events[-1]["message"] == "The model provider could not be reached, or the connection broke off mid-answer."


@pytest.mark.parametrize(
    ("variable", "value"),
    [("MODEL_TIMEOUT_SECONDS", "0"), ("MODEL_MAX_RETRIES", "-1"), ("TOOL_TIMEOUT_SECONDS", "-5")],
)
def test_timeouts_and_retries_out_of_range_are_refused(variable: str, value: str) -> None:
    with pytest.raises(SettingsError, match=f"AGNO_GRAPHQL_{variable}"):
        load_settings({f"AGNO_GRAPHQL_{variable}": value}, env_file=None)


def test_timeouts_and_retries_are_read_from_the_environment() -> None:
    environ = {
        "AGNO_GRAPHQL_MODEL_TIMEOUT_SECONDS": "2.5",
        "AGNO_GRAPHQL_MODEL_MAX_RETRIES": "0",
        "AGNO_GRAPHQL_TOOL_TIMEOUT_SECONDS": "7",
    }
    settings = load_settings(environ, env_file=None)

    assert (settings.model_timeout_seconds, settings.model_max_retries, settings.tool_timeout_seconds) == (2.5, 0, 7)

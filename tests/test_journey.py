"""A user's whole journey through the API, over real HTTP and websockets."""

from __future__ import annotations

from tests.client import execute, run_agent
from tests.conftest import RunningServer, make_token
from tests.matrix_support import create_session

LIST = """
query List($first: Int, $after: String, $last: Int, $before: String) {
  sessions(first: $first, after: $after, last: $last, before: $before) {
    totalCount
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges { cursor node { id name } }
    nodes { id }
  }
}
"""
HISTORY = """
query History($id: ID!, $first: Int, $after: String, $last: Int, $before: String) {
  session(id: $id) {
    id name runCount
    messages(first: $first, after: $after, last: $last, before: $before) {
      totalCount
      pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
      nodes { id runId role content toolCalls { id name arguments } toolCallId toolName createdAt }
    }
  }
}
"""


async def test_create_run_with_tool_and_read_history(server: RunningServer, user_id: str) -> None:
    token = make_token(user_id)
    session = await create_session(server, token, "calculator")
    assert session["runCount"] == 0 and session["name"] is None

    events = await run_agent(server, token, "calculator", "What is 12 * 7?", session["id"])
    kinds = [e["__typename"] for e in events]
    assert kinds[0] == "RunStarted" and kinds[-1] == "RunCompleted"
    assert [e["index"] for e in events] == list(range(len(events)))
    assert "ToolCallStarted" in kinds and "ToolCallCompleted" in kinds
    tool_done = next(e for e in events if e["__typename"] == "ToolCallCompleted")
    assert tool_done["toolCall"]["name"] == "multiply"
    assert tool_done["toolCall"]["arguments"] == {"a": 12, "b": 7}
    assert tool_done["result"] == "84" and tool_done["failed"] is False
    deltas = "".join(e["delta"] for e in events if e["__typename"] == "RunContentDelta")
    assert deltas == events[-1]["content"] == "The answer is 84."
    assert events[0]["model"] == {"provider": "offline", "id": "offline-demo"}

    history = await execute(server, token, HISTORY, {"id": session["id"], "last": 10})
    stored = history["session"]
    assert stored["runCount"] == 1
    assert stored["name"] == "What is 12 * 7?"
    roles = [m["role"] for m in stored["messages"]["nodes"]]
    assert roles == ["USER", "ASSISTANT", "TOOL", "ASSISTANT"]
    assert stored["messages"]["nodes"][1]["toolCalls"][0]["name"] == "multiply"
    assert stored["messages"]["nodes"][-1]["content"] == "The answer is 84."
    assert stored["messages"]["totalCount"] == 4


async def test_run_without_session_starts_one(server: RunningServer, user_id: str) -> None:
    token = make_token(user_id)
    events = await run_agent(server, token, "assistant", "hello there")
    session_id = events[0]["sessionId"]
    assert events[-1]["__typename"] == "RunCompleted"
    assert events[-1]["content"] == "You said: hello there"
    listed = await execute(server, token, LIST, {"first": 5})
    assert [n["id"] for n in listed["sessions"]["nodes"]] == [session_id]
    assert listed["sessions"]["edges"][0]["node"]["name"] == "hello there"

"""Steps for runs that pause for a person: ask the helpdesk agent to use a tool, answer, continue."""

from __future__ import annotations

from typing import Any

from tests.client import TRANSPORT_WS, operation, subscribe
from tests.conftest import RunningServer
from tests.matrix_support import create_session

# What the offline model says to reach each of the helpdesk's tools (the README gives the same sentences).
ASK = {
    "CONFIRMATION": "use the restart_service tool",
    "USER_INPUT": "use the open_ticket tool",
    "EXTERNAL_EXECUTION": "use the run_diagnostics tool",
    "USER_FEEDBACK": "use the ask_user tool",
}


async def paused_run(
    server: RunningServer, token: str, kind: str, session_id: str | None = None, subprotocol: str = TRANSPORT_WS
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """A helpdesk run asked to use the tool of `kind`, streamed to its RunPaused: (events, the RunPaused)."""
    if session_id is None:
        session_id = str((await create_session(server, token, "helpdesk"))["id"])
    variables = {"input": {"agentId": "helpdesk", "sessionId": session_id, "message": ASK[kind]}}
    events = [r["runAgent"] for r in await subscribe(server, token, operation("RunAgent"), variables, subprotocol)]
    assert events[-1]["__typename"] == "RunPaused", events
    return events, events[-1]


def good_answer(requirement: dict[str, Any], refuse: bool = False) -> dict[str, Any]:
    """An answer of the right shape for the requirement (a refusal with a note for CONFIRMATION when asked)."""
    answer: dict[str, Any] = {"requirementId": requirement["id"]}
    kind = requirement["kind"]
    if kind == "CONFIRMATION":
        answer["confirmed"] = not refuse
        if refuse:
            answer["note"] = "Not during office hours."
    elif kind == "USER_INPUT":
        answer["values"] = {"summary": "The printer is on fire", "priority": 1}
    elif kind == "USER_FEEDBACK":
        answer["selections"] = [["Team"], ["Backups", "Audit log"]]
    elif kind == "EXTERNAL_EXECUTION":
        answer["result"] = "up 3 days, load average 0.42"
    return answer


async def continue_run(
    server: RunningServer,
    token: str,
    run_id: str,
    answers: list[dict[str, Any]],
    subprotocol: str = TRANSPORT_WS,
    on_disconnect: str = "CONTINUE",
) -> list[dict[str, Any]]:
    """The events continueRun streams, to the end."""
    variables = {"input": {"runId": run_id, "answers": answers, "onDisconnect": on_disconnect}}
    results = await subscribe(server, token, operation("ContinueRun"), variables, subprotocol)
    return [result["continueRun"] for result in results]

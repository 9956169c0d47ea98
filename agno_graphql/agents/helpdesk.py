"""The helpdesk agent's tools: one of each kind that pauses a run for a person, so the offline demo shows them all.

- `restart_service` asks for confirmation first (CONFIRMATION);
- `open_ticket` takes its summary and priority from the person (USER_INPUT);
- `run_diagnostics` is run by the client, which sends back what it printed (EXTERNAL_EXECUTION);
- Agno's `UserFeedbackTools.ask_user` asks questions with options (USER_FEEDBACK).
"""

from __future__ import annotations

from agno.tools import tool
from agno.tools.function import Function
from agno.tools.toolkit import Toolkit
from agno.tools.user_feedback import UserFeedbackTools


@tool(requires_confirmation=True)
def restart_service(service: str = "web") -> str:
    """Restart one of the user's services.

    Args:
        service: The service to restart.
    """
    return f"The {service} service was restarted."


@tool(requires_user_input=True, user_input_fields=["summary", "priority"])
def open_ticket(summary: str, priority: int) -> str:
    """Open a support ticket; the user gives its summary and priority (1 urgent to 5 whenever).

    Args:
        summary: What the ticket is about.
        priority: From 1 (urgent) to 5 (whenever).
    """
    return f"Ticket opened at priority {priority}: {summary}"


@tool(external_execution=True)
def run_diagnostics(command: str = "uptime") -> str:
    """Run a diagnostic command on the user's own machine (the client runs it and sends back its output).

    Args:
        command: The command to run.
    """
    raise RuntimeError("run_diagnostics is run by the client, never by the server")


def helpdesk_tools() -> list[Function | Toolkit]:
    return [restart_service, open_ticket, run_diagnostics, UserFeedbackTools()]

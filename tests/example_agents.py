"""A user's own agents module, as AGNO_GRAPHQL_AGENTS would name it (`tests.example_agents:make_agents`).

The agent has no model and no database: the server gives it both.
"""

from __future__ import annotations

from agno.agent import Agent

ECHO_INSTRUCTIONS = ["Repeat what the user says.", "Use the shout tool when asked to shout."]


def shout(text: str) -> str:
    """Return the text in capital letters with an exclamation mark.

    Args:
        text: The text to shout.
    """
    return f"{text.upper()}!"


def make_agents() -> list[Agent]:
    """The factory form: a fresh list of agents per call."""
    return [
        Agent(
            id="echo",
            name="Echo",
            description="Repeats what it is told.",
            instructions=list(ECHO_INSTRUCTIONS),
            tools=[shout],
        )
    ]


AGENTS: list[Agent] = make_agents()
"""The list form."""

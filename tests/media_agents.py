"""An agents module (AGNO_GRAPHQL_AGENTS=tests.media_agents:make_agents) whose tool makes an image, as image
generation tools do: the run's output media, stored as an attachment of its last assistant message."""

from __future__ import annotations

from agno.agent import Agent
from agno.media import Image
from agno.tools.function import ToolResult

from tests.attachment_support import png

DRAWN_SIZE = (16, 8)


def draw() -> ToolResult:
    """Draw a small picture and return it."""
    width, height = DRAWN_SIZE
    return ToolResult(
        content=f"Drew a {width}x{height} picture.", images=[Image(content=png(width, height), mime_type="image/png")]
    )


def make_agents() -> list[Agent]:
    return [Agent(id="painter", name="Painter", description="Draws pictures with its draw tool.", tools=[draw])]

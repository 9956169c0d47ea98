"""The offline demo model: a real Agno model that needs no network and no key.

It restates the user's message word by word, answers arithmetic questions
through the agent's tools when the agent has the matching one, and calls any
tool of the agent by name when asked to "use the <name> tool" (without
arguments, but for Agno's `ask_user`, which it asks two demo questions with),
so streaming, tool calls and pauses can be shown and tested anywhere.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any
from uuid import uuid4

from agno.media import Audio, File, Image, Video
from agno.metrics import MessageMetrics
from agno.models.base import Model
from agno.models.message import Message
from agno.models.response import ModelResponse

OFFLINE_PROVIDER = "offline"
OFFLINE_MODEL_ID = "offline-demo"

_NUMBER = r"(-?\d+(?:\.\d+)?)"
_ARITHMETIC = re.compile(rf"{_NUMBER}\s*([-+*/x×÷])\s*{_NUMBER}")
_USE_TOOL = re.compile(r"\buse the (\w+) tool\b", re.IGNORECASE)
_TOOL_FOR_OPERATOR = {
    "+": "add",
    "-": "subtract",
    "*": "multiply",
    "x": "multiply",
    "×": "multiply",
    "/": "divide",
    "÷": "divide",
}


def _number(text: str) -> int | float:
    value = float(text)
    return int(value) if value.is_integer() and "." not in text else value


def _tool_names(tools: list[dict[str, Any]] | None) -> set[str]:
    names: set[str] = set()
    for tool in tools or []:
        function = tool.get("function") if isinstance(tool, dict) else None
        if isinstance(function, dict) and function.get("name"):
            names.add(str(function["name"]))
    return names


def _text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return json.dumps(content, default=str)


@dataclass
class _Plan:
    """What the model does next: call a tool, or say some text."""

    text: str = ""
    tool_call: dict[str, Any] | None = None


def plan_reply(messages: list[Message], tools: list[dict[str, Any]] | None) -> _Plan:
    """Decide the reply from the conversation so far (pure, for tests too)."""
    last = messages[-1] if messages else None
    if last is not None and last.role == "tool" and last.tool_call_error:
        return _Plan(text=f"The tool {last.tool_name} failed: {_text(last.content)}")
    if last is not None and last.role == "tool":
        return _Plan(text=f"The answer is {_text(last.content)}.")
    user = next((m for m in reversed(messages) if m.role == "user"), None)
    user_text = _text(user.content) if user is not None else ""
    sent = _described_media(user) if user is not None else ""
    if sent:
        said = f"You said: {user_text.strip()}\n" if user_text.strip() else ""
        return _Plan(text=f"{said}You sent {sent}.")
    match = _ARITHMETIC.search(user_text)
    if match:
        tool_name = _TOOL_FOR_OPERATOR[match.group(2)]
        if tool_name in _tool_names(tools):
            arguments = {"a": _number(match.group(1)), "b": _number(match.group(3))}
            return _Plan(tool_call=_call(tool_name, arguments))
    requested = _USE_TOOL.search(user_text)
    if requested and requested.group(1) in _tool_names(tools):
        name = requested.group(1)
        return _Plan(tool_call=_call(name, _DEMO_ARGUMENTS.get(name, {})))
    if not user_text.strip():
        return _Plan(text="I am the offline demo model. Send me a message and I will restate it.")
    return _Plan(text=f"You said: {user_text.strip()}")


def _described_media(message: Message) -> str:
    """What the message carries, from the facts measured at upload (Agno's media `metadata`), and how many of its
    bytes reached the model (Agno loads them from the media storage)."""
    parts = []
    media: list[Image | Audio | Video | File] = [
        *(message.images or []),
        *(message.audio or []),
        *(message.videos or []),
        *(message.files or []),
    ]
    for medium in media:
        facts = medium.metadata or {}
        name = facts.get("name") or getattr(medium, "filename", None) or medium.id or "a file"
        kind = str(facts.get("kind") or type(medium).__name__).lower()
        details = [kind, f"{facts.get('byte_size', '?')} bytes"]
        if facts.get("width") and facts.get("height"):
            details.append(f"{facts['width']}x{facts['height']}")
        if facts.get("first_line"):
            details.append(f"first line: {facts['first_line']!r}")
        content = medium.content
        details.append(f"{len(content)} bytes received" if isinstance(content, bytes) else "no bytes received")
        parts.append(f"{name} ({', '.join(details)})")
    return "; ".join(parts)


# What the model asks when told to use Agno's UserFeedbackTools: one choice of one option, one of several.
DEMO_QUESTIONS = [
    {
        "header": "Plan",
        "question": "Which plan would you like?",
        "options": [
            {"label": "Basic", "description": "One seat, email support."},
            {"label": "Team", "description": "Ten seats, chat support."},
        ],
        "multi_select": False,
    },
    {
        "header": "Extras",
        "question": "Which extras should come with it?",
        "options": [{"label": "Backups"}, {"label": "Audit log"}, {"label": "Single sign-on"}],
        "multi_select": True,
    },
]
_DEMO_ARGUMENTS: dict[str, dict[str, Any]] = {"ask_user": {"questions": DEMO_QUESTIONS}}


def _call(tool_name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": f"call_{uuid4().hex[:12]}",
        "type": "function",
        "function": {"name": tool_name, "arguments": json.dumps(arguments)},
    }


def _words(text: str) -> list[str]:
    """Split into deltas that join back to the text exactly."""
    return re.findall(r"\S+\s*|\s+", text)


@dataclass
class OfflineModel(Model):
    """Offline demo model (provider `offline`): streams its reply word by word."""

    id: str = OFFLINE_MODEL_ID
    name: str | None = "Offline demo model"
    provider: str | None = OFFLINE_PROVIDER
    delay_seconds: float = 0.02

    def _usage(self, messages: list[Message], output: str) -> MessageMetrics:
        input_tokens = sum(len(_text(m.content).split()) for m in messages)
        output_tokens = len(output.split())
        return MessageMetrics(
            input_tokens=input_tokens, output_tokens=output_tokens, total_tokens=input_tokens + output_tokens
        )

    def _responses(self, messages: list[Message], tools: list[dict[str, Any]] | None) -> Iterator[ModelResponse]:
        plan = plan_reply(messages, tools)
        if plan.tool_call is not None:
            yield ModelResponse(role="assistant", tool_calls=[plan.tool_call])
            yield ModelResponse(role="assistant", response_usage=self._usage(messages, ""))
            return
        for word in _words(plan.text):
            yield ModelResponse(role="assistant", content=word)
        yield ModelResponse(role="assistant", response_usage=self._usage(messages, plan.text))

    def _whole(self, messages: list[Message], tools: list[dict[str, Any]] | None) -> ModelResponse:
        plan = plan_reply(messages, tools)
        if plan.tool_call is not None:
            return ModelResponse(
                role="assistant", tool_calls=[plan.tool_call], response_usage=self._usage(messages, "")
            )
        return ModelResponse(role="assistant", content=plan.text, response_usage=self._usage(messages, plan.text))

    def invoke(self, messages: list[Message], tools: Any = None, **kwargs: Any) -> ModelResponse:
        return self._whole(messages, tools)

    async def ainvoke(self, messages: list[Message], tools: Any = None, **kwargs: Any) -> ModelResponse:
        return self._whole(messages, tools)

    def invoke_stream(self, messages: list[Message], tools: Any = None, **kwargs: Any) -> Iterator[ModelResponse]:
        for response in self._responses(messages, tools):
            if response.content and self.delay_seconds > 0:
                time.sleep(self.delay_seconds)
            yield response

    async def ainvoke_stream(
        self, messages: list[Message], tools: Any = None, **kwargs: Any
    ) -> AsyncIterator[ModelResponse]:
        for response in self._responses(messages, tools):
            if response.content:
                # Yield to the loop even with no delay, so one run cannot starve others.
                await asyncio.sleep(self.delay_seconds)
            yield response

    def _parse_provider_response(self, response: Any, **kwargs: Any) -> ModelResponse:
        return response if isinstance(response, ModelResponse) else ModelResponse(content=_text(response))

    def _parse_provider_response_delta(self, response: Any) -> ModelResponse:
        return self._parse_provider_response(response)

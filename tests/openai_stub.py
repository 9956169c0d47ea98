"""A tiny OpenAI-compatible chat-completions server for the tests, on a loopback port.

It speaks just enough of the API for Agno's `OpenAILike` model: `POST /v1/chat/completions`, streamed as
server-sent events (`data: {...}` chunks, then `data: [DONE]`) or answered whole. Its answers are scripted:

- tools offered and the last message is the user's and contains "12 * 7": a `multiply` tool call with
  `{"a": 12, "b": 7}`, streamed in pieces (id and name first, then the arguments), finish reason `tool_calls`;
- tools offered, among them `restart_service`, and the user's message contains "restart the web service": a
  `restart_service` call with `{"service": "web"}` in pieces (a tool that asks for confirmation first);
- the last message is a tool result: "The answer is <result>.", word by word;
- otherwise: "Echo: <the user's text>", word by word.

Every request body is recorded, so tests can check what the agent sent. Setting `fail_status` makes every
request fail with that HTTP status until it is set back to None. Setting `fault` to a `Fault` scripts one of the
ways a provider breaks (an error status, a 429 with Retry-After, silence, a stream cut off or ended early, a
malformed chunk),
for its next `times` requests or all of them.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.conftest import serve_in_thread

TOOL_QUESTION = "12 * 7"
TOOL_ARGUMENT_PIECES = ['{"a"', ": 12", ', "b"', ": 7}"]
RESTART_QUESTION = "restart the web service"
RESTART_ARGUMENT_PIECES = ['{"serv', 'ice": ', '"web"}']
PROMPT_TOKENS = 11


def message_text(message: dict[str, Any]) -> str:
    """A message's text, whether its content is a string or a list of parts."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def history_given(request: dict[str, Any]) -> list[str]:
    """The text of each message of a request, its system prompt left out: the conversation the model was given."""
    return [message_text(m) for m in request["messages"] if m["role"] != "system"]


def words(text: str) -> list[str]:
    """The text in pieces that join back to it exactly: each word with the space before it."""
    pieces = text.split(" ")
    return [pieces[0]] + [f" {piece}" for piece in pieces[1:]]


# A hang ends by itself after this long at most, whatever a test asks for.
MAX_HANG_SECONDS = 10.0


@dataclass
class Fault:
    """How the stub misbehaves. Build one with the class methods."""

    kind: str
    status: int = 500
    retry_after: str | None = None
    after_chunks: int | None = None
    hang_seconds: float = 0.0
    times: int | None = None

    @classmethod
    def http_status(cls, status: int, times: int | None = None) -> Fault:
        return cls("status", status=status, times=times)

    @classmethod
    def rate_limited(cls, retry_after: str, times: int | None = None) -> Fault:
        """HTTP 429 with a Retry-After header (seconds)."""
        return cls("status", status=429, retry_after=retry_after, times=times)

    @classmethod
    def hang(cls, seconds: float, after_chunks: int | None = None, times: int | None = None) -> Fault:
        """Send nothing for a while: before the response (`after_chunks` None) or after that many chunks."""
        return cls("hang", hang_seconds=min(seconds, MAX_HANG_SECONDS), after_chunks=after_chunks, times=times)

    @classmethod
    def slow(cls, seconds_per_chunk: float, times: int | None = None) -> Fault:
        """Stream at a real model's pace: wait this long before each chunk (a run long enough to act during)."""
        return cls("slow", hang_seconds=min(seconds_per_chunk, MAX_HANG_SECONDS), times=times)

    @classmethod
    def cut(cls, after_chunks: int, times: int | None = None) -> Fault:
        """Drop the connection after that many chunks of a streamed answer: no [DONE], no end of the body."""
        return cls("cut", after_chunks=after_chunks, times=times)

    @classmethod
    def end_early(cls, after_chunks: int, times: int | None = None) -> Fault:
        """End the body cleanly after that many chunks: no finish reason, no [DONE]."""
        return cls("end", after_chunks=after_chunks, times=times)

    @classmethod
    def malformed(cls, after_chunks: int, times: int | None = None) -> Fault:
        """After that many chunks, a `data:` line that is not JSON."""
        return cls("malformed", after_chunks=after_chunks, times=times)


class StubConnectionCut(Exception):
    """Raised inside a streamed answer so that uvicorn drops the connection mid-body."""


class OpenAIStub:
    """The stub's state: what it received and whether it is failing. Serve it with `serve_stub`."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.fail_status: int | None = None
        self.fault: Fault | None = None
        self.port = 0
        self._lock = threading.Lock()
        self.app = Starlette(routes=[Route("/v1/chat/completions", self._completions, methods=["POST"])])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def received(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.requests)

    def requests_mentioning(self, text: str) -> list[dict[str, Any]]:
        """The recorded request bodies with a message containing `text`, in the order they came."""
        return [body for body in self.received() if any(text in message_text(m) for m in body.get("messages", []))]

    def history_mentioning(self, text: str) -> list[str]:
        """The conversation given to the model (its system prompt left out) by the one request mentioning `text`."""
        [request] = self.requests_mentioning(text)
        return history_given(request)

    def _take_fault(self) -> Fault | None:
        with self._lock:
            fault = self.fault
            if fault is None:
                return None
            if fault.times is not None:
                fault.times -= 1
                if fault.times <= 0:
                    self.fault = None
            return fault

    async def _completions(self, request: Request) -> Response:
        body = await request.json()
        with self._lock:
            self.requests.append(body)
        fault = self._take_fault()
        if fault is not None and fault.kind == "status":
            headers = {"retry-after": fault.retry_after} if fault.retry_after else {"retry-after-ms": "1"}
            return JSONResponse(
                {"error": {"message": f"The stub provider answers {fault.status} on purpose.", "type": "stub"}},
                status_code=fault.status,
                headers=headers,
            )
        if fault is not None and fault.kind == "hang" and fault.after_chunks is None:
            await asyncio.sleep(fault.hang_seconds)
            fault = None
        if self.fail_status is not None:
            # retry-after-ms lets the OpenAI client retry at once instead of backing off for seconds.
            return JSONResponse(
                {"error": {"message": "The stub provider is failing on purpose.", "type": "server_error"}},
                status_code=self.fail_status,
                headers={"retry-after-ms": "1"},
            )
        model = str(body.get("model", "stub-model"))
        completion_id = f"chatcmpl-{uuid.uuid4().hex[:12]}"
        script = self._script(body)
        if not body.get("stream"):
            return JSONResponse(self._whole_completion(completion_id, model, script))
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        chunks = self._sse(completion_id, model, script, include_usage)
        if fault is not None:
            chunks = self._faulty(chunks, fault)
        return StreamingResponse(chunks, media_type="text/event-stream")

    @staticmethod
    async def _faulty(chunks: AsyncIterator[str], fault: Fault) -> AsyncIterator[str]:
        """The chunks, until the fault strikes after `fault.after_chunks` of them."""
        sent = 0
        async for chunk in chunks:
            if fault.kind == "slow":
                await asyncio.sleep(fault.hang_seconds)
            if sent == fault.after_chunks:
                if fault.kind == "cut":
                    raise StubConnectionCut("the stub cuts the stream on purpose")
                if fault.kind == "end":
                    return
                if fault.kind == "malformed":
                    yield 'data: {"id": "chatcmpl-broken", "choices": [{"delta": {"content": "\n\n'
                    return
                if fault.kind == "hang":
                    await asyncio.sleep(fault.hang_seconds)
            yield chunk
            sent += 1

    @staticmethod
    def _script(body: dict[str, Any]) -> dict[str, Any]:
        """What to answer: `{"tool_call": {...}}` or `{"text": "..."}`."""
        messages = body.get("messages") or []
        last = messages[-1] if messages else {}
        call_id = f"call_{uuid.uuid4().hex[:12]}"
        asked = message_text(last) if last.get("role") == "user" else ""
        if body.get("tools") and TOOL_QUESTION in asked:
            return {"tool_call": {"id": call_id, "name": "multiply", "pieces": TOOL_ARGUMENT_PIECES}}
        offered = {(tool.get("function") or {}).get("name") for tool in body.get("tools") or []}
        if "restart_service" in offered and RESTART_QUESTION in asked:
            return {"tool_call": {"id": call_id, "name": "restart_service", "pieces": RESTART_ARGUMENT_PIECES}}
        if last.get("role") == "tool":
            return {"text": f"The answer is {message_text(last)}."}
        user_text = next((message_text(m) for m in reversed(messages) if m.get("role") == "user"), "")
        return {"text": f"Echo: {user_text}"}

    @staticmethod
    def _chunk(completion_id: str, model: str, delta: dict[str, Any], finish_reason: str | None = None) -> str:
        chunk = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
        }
        return f"data: {json.dumps(chunk)}\n\n"

    async def _sse(
        self, completion_id: str, model: str, script: dict[str, Any], include_usage: bool
    ) -> AsyncIterator[str]:
        pieces = 0
        if "tool_call" in script:
            call = script["tool_call"]
            first = {"index": 0, "id": call["id"], "type": "function", "function": {"name": call["name"]}}
            first["function"]["arguments"] = ""
            yield self._chunk(completion_id, model, {"role": "assistant", "content": None, "tool_calls": [first]})
            for piece in call["pieces"]:
                pieces += 1
                delta = {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}
                yield self._chunk(completion_id, model, delta)
            yield self._chunk(completion_id, model, {}, finish_reason="tool_calls")
        else:
            yield self._chunk(completion_id, model, {"role": "assistant", "content": ""})
            for piece in words(script["text"]):
                pieces += 1
                yield self._chunk(completion_id, model, {"content": piece})
            yield self._chunk(completion_id, model, {}, finish_reason="stop")
        if include_usage:
            usage = {
                "prompt_tokens": PROMPT_TOKENS,
                "completion_tokens": pieces,
                "total_tokens": PROMPT_TOKENS + pieces,
            }
            final = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": model,
                "choices": [],
                "usage": usage,
            }
            yield f"data: {json.dumps(final)}\n\n"
        yield "data: [DONE]\n\n"

    @staticmethod
    def _whole_completion(completion_id: str, model: str, script: dict[str, Any]) -> dict[str, Any]:
        if "tool_call" in script:
            call = script["tool_call"]
            message: dict[str, Any] = {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": call["id"],
                        "type": "function",
                        "function": {"name": call["name"], "arguments": "".join(call["pieces"])},
                    }
                ],
            }
            finish_reason, completion_tokens = "tool_calls", len(call["pieces"])
        else:
            message = {"role": "assistant", "content": script["text"]}
            finish_reason, completion_tokens = "stop", len(words(script["text"]))
        return {
            "id": completion_id,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
            "usage": {
                "prompt_tokens": PROMPT_TOKENS,
                "completion_tokens": completion_tokens,
                "total_tokens": PROMPT_TOKENS + completion_tokens,
            },
        }


@contextmanager
def serve_stub() -> Iterator[OpenAIStub]:
    """Serve a fresh stub with uvicorn in a thread on a free loopback port, for the duration of the block."""
    stub = OpenAIStub()
    server, thread, stub.port = serve_in_thread(stub.app, "openai-stub", lifespan="off")
    try:
        yield stub
    finally:
        server.should_exit = True
        thread.join(timeout=30)

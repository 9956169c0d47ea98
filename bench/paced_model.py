"""A paced OpenAI-compatible model server, a process of its own: `python -m bench.paced_model PORT`.

What a real provider is to a server: another machine whose tokens keep coming at their pace, however loaded
the server reading them is. `POST /v1/chat/completions` with `stream: true` answers with server-sent events in
OpenAI's chunk format; the model named `paced-<deltas>x<delay_ms>` sends `deltas` content chunks, chunk k due at
the request's arrival + k × delay_ms, each chunk's text the time it was due (`"<unix seconds> "`), so a client
measures a delta's lateness as received minus due. A usage chunk and `[DONE]` follow.

`GET /stats` gives how late this server itself sent its chunks (sent minus due, over every chunk since the last
`POST /stats/reset`): when it falls behind, the setup, not the server measured, is the bottleneck.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import sys
import time
import uuid
from typing import Any

from aiohttp import web

from bench.stats import summary

MODEL_NAME = re.compile(r"paced-(\d+)x(\d+)")
# Chunks sent late by more than this are counted apart: the server fell behind its own schedule.
BEHIND_MS = 5.0


def model_name(deltas: int, delay_ms: int) -> str:
    return f"paced-{deltas}x{delay_ms}"


class PacedModel:
    def __init__(self) -> None:
        self.lateness_ms: list[float] = []
        self.requests = 0
        self.open_streams = 0
        self.most_open = 0
        self.cpu_at_reset = time.process_time()
        self.reset_at = time.time()

    @staticmethod
    def _content_template(completion_id: str, model: str) -> tuple[bytes, bytes]:
        """A content chunk's bytes around its text, made once per stream: at a few thousand chunks a second on one
        core, building each chunk with json.dumps is what made this server fall behind first."""
        marker = "\u0000TEXT\u0000"
        chunk = json.dumps(
            {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": model,
                "choices": [{"index": 0, "delta": {"content": marker}, "finish_reason": None}],
            }
        )
        before, after = chunk.split(json.dumps(marker)[1:-1])
        return b"data: " + before.encode(), after.encode() + b"\n\n"

    def _chunk(self, completion_id: str, model: str, delta: dict[str, Any], finish: str | None = None) -> bytes:
        chunk = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        return b"data: " + json.dumps(chunk).encode() + b"\n\n"

    async def completions(self, request: web.Request) -> web.StreamResponse:
        arrived = time.time()
        body = await request.json()
        model = str(body.get("model", ""))
        match = MODEL_NAME.fullmatch(model)
        if match is None or not body.get("stream"):
            message = f"this server streams the models paced-<deltas>x<delay_ms> only, not {model!r} unstreamed"
            return web.json_response({"error": {"message": message, "type": "invalid_request_error"}}, status=400)
        deltas, delay = int(match[1]), int(match[2]) / 1000
        self.requests += 1
        self.open_streams += 1
        self.most_open = max(self.most_open, self.open_streams)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        completion_id = f"chatcmpl-{uuid.uuid4().hex[:12]}"
        try:
            await response.prepare(request)
            await response.write(self._chunk(completion_id, model, {"role": "assistant", "content": ""}))
            before, after = self._content_template(completion_id, model)
            for k in range(deltas):
                due = arrived + k * delay
                wait = due - time.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                await response.write(b"%s%.6f %s" % (before, due, after))
                self.lateness_ms.append((time.time() - due) * 1000)
            await response.write(self._chunk(completion_id, model, {}, finish="stop"))
            if (body.get("stream_options") or {}).get("include_usage"):
                usage = {"prompt_tokens": 8, "completion_tokens": deltas, "total_tokens": 8 + deltas}
                final = {"id": completion_id, "object": "chat.completion.chunk", "created": int(arrived)}
                final |= {"model": model, "choices": [], "usage": usage}
                await response.write(b"data: " + json.dumps(final).encode() + b"\n\n")
            await response.write(b"data: [DONE]\n\n")
            await response.write_eof()
        finally:
            self.open_streams -= 1
        return response

    async def stats(self, request: web.Request) -> web.Response:
        late = self.lateness_ms
        return web.json_response(
            {
                "requests": self.requests,
                "chunks": len(late),
                "lateness_ms": summary(late),
                "behind": sum(1 for x in late if x > BEHIND_MS),
                "most_open_streams": self.most_open,
                "cpu_seconds": time.process_time() - self.cpu_at_reset,
                "seconds": time.time() - self.reset_at,
            }
        )

    async def reset(self, request: web.Request) -> web.Response:
        self.lateness_ms = []
        self.requests = 0
        self.most_open = self.open_streams
        self.cpu_at_reset = time.process_time()
        self.reset_at = time.time()
        return web.json_response({"reset": True})


def build_app() -> web.Application:
    model = PacedModel()
    app = web.Application(client_max_size=4 * 2**20)
    app.router.add_post("/v1/chat/completions", model.completions)
    app.router.add_get("/stats", model.stats)
    app.router.add_post("/stats/reset", model.reset)
    return app


def main() -> None:
    port = int(sys.argv[1])
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    web.run_app(build_app(), host="127.0.0.1", port=port, print=None, access_log=None, backlog=4096)


if __name__ == "__main__":
    main()

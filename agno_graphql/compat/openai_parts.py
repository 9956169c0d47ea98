"""The OpenAI SDK's undocumented part the model path leans on. Checked with openai 3.57.0.

Every chunk of a streamed chat completion is cast by `BaseClient._process_response_data` into a
`ChatCompletionChunk`: a runtime-protocol check of the class (`issubclass(..., ModelBuilderProtocol)`, which walks
the class with `inspect.getattr_static`) and `construct_type` field by field, with a look at each annotation's
origin. At a model's pace that was about a fifth of the server's CPU for each streamed delta (BENCHMARKS.md, B4).
A plain content chunk (an id, a model, one choice whose delta holds a role and text, nothing else) is built here
with pydantic's own `model_construct` (the SDK's models replace it with their `construct`, the slow cast): the same
types, the same values, the same fields set, and no extra fields (a chunk with any field this does not know goes the
SDK's way, which keeps it in `model_extra`). The SDK has no public hook for the cast; `tests/test_compat.py` checks
that it is still the method the stream calls, and `tests/test_models.py` that both casts give the same chunk. The
client is made with the options Agno's OpenAI models give their own (`OpenAIChat._get_client_params`, private;
checked with agno 3.1.10).
"""

from __future__ import annotations

from typing import Any, TypeVar

import httpx
from agno.models.openai.chat import OpenAIChat
from openai import AsyncOpenAI, DefaultAioHttpClient
from openai import BaseModel as SdkModel
from openai.types.chat.chat_completion_chunk import ChatCompletionChunk, Choice, ChoiceDelta

# The fields of a chunk, its choice and the choice's delta that a plain content chunk may hold (with a null where
# the SDK's type allows one); `choices` and `delta` are read on their own.
_CHUNK_FIELDS = frozenset({"id", "object", "created", "model", "system_fingerprint", "service_tier", "obfuscation"})
_NULL_ONLY = frozenset({"usage", "moderation"})
_CHOICE_FIELDS = frozenset({"index", "finish_reason"})
_DELTA_FIELDS = frozenset({"role", "content", "refusal"})


def plain_chunk(data: object) -> ChatCompletionChunk | None:
    """The chunk `data` (its decoded JSON) as the SDK would cast it, when it is a plain content chunk; else None."""
    if data.__class__ is not dict:
        return None
    fields: dict[str, Any] = {}
    choices: Any = None
    for key, value in data.items():
        if key in _CHUNK_FIELDS and (value is None or value.__class__ in (str, int)):
            fields[key] = value
        elif key == "choices":
            choices = value
        elif key in _NULL_ONLY and value is None:
            fields[key] = None
        else:
            return None
    if choices.__class__ is not list or len(choices) != 1 or choices[0].__class__ is not dict:
        return None
    choice_fields: dict[str, Any] = {}
    delta: Any = None
    for key, value in choices[0].items():
        if key in _CHOICE_FIELDS and (value is None or value.__class__ in (str, int)):
            choice_fields[key] = value
        elif key == "delta":
            delta = value
        elif key == "logprobs" and value is None:
            choice_fields[key] = None
        else:
            return None
    if delta.__class__ is not dict:
        return None
    for key, value in delta.items():
        if key not in _DELTA_FIELDS or not (value is None or value.__class__ is str):
            return None
    choice_fields["delta"] = _construct(ChoiceDelta, delta)
    fields["choices"] = [_construct(Choice, choice_fields)]
    return _construct(ChatCompletionChunk, fields)


M = TypeVar("M", bound=SdkModel)


def _construct(model: type[M], fields: dict[str, Any]) -> M:
    """pydantic's `model_construct` of an SDK model: no validation, `fields` as the fields set."""
    return super(SdkModel, model).model_construct(**fields)


class LeanChunkClient(AsyncOpenAI):
    """The SDK's async client, with plain content chunks cast by `plain_chunk`; anything else as the SDK casts it."""

    def _process_response_data(self, *, data: object, cast_to: type[Any], response: Any) -> Any:
        if cast_to is ChatCompletionChunk and (chunk := plain_chunk(data)) is not None:
            return chunk
        return super()._process_response_data(data=data, cast_to=cast_to, response=response)


def lean_async_client(model: OpenAIChat) -> LeanChunkClient:
    """The client Agno's `get_async_client` would make for `model` (its options, its HTTP client), casting lean.
    Without an HTTP client of the model's own, requests go over the SDK's aiohttp transport (`DefaultAioHttpClient`,
    documented): reading a streamed answer over it costs about half the CPU of the default HTTPX transport, which
    arms an anyio timeout scope for every read (BENCHMARKS.md, B4)."""
    params = model._get_client_params()
    if isinstance(model.http_client, httpx.AsyncClient):  # as Agno does: a synchronous one is not used here
        params["http_client"] = model.http_client
    else:
        params["http_client"] = DefaultAioHttpClient()
    return LeanChunkClient(**params)

"""Choosing the model from settings: the offline demo model, an Agno provider, or an OpenAI-compatible URL."""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator
from contextlib import suppress
from contextvars import ContextVar
from typing import Any

from agno.exceptions import ModelProviderError, ModelRateLimitError
from agno.models.base import Model
from agno.models.openai.like import OpenAILike
from agno.models.response import ModelResponse
from agno.models.utils import get_model
from openai import AsyncOpenAI

from agno_graphql.agents.events import (
    MODEL_BAD_RESPONSE,
    MODEL_ERROR,
    MODEL_RATE_LIMITED,
    MODEL_TIMEOUT,
    MODEL_UNAVAILABLE,
    failure_type,
)
from agno_graphql.agents.offline import OFFLINE_PROVIDER, OfflineModel
from agno_graphql.compat.openai_parts import lean_async_client
from agno_graphql.settings import Settings, SettingsError


class ModelSettingError(SettingsError):
    """The MODEL setting names no usable model; the message says why."""


def build_model(settings: Settings) -> Model:
    """`offline` (default), `provider:model_id` (e.g. `openai:gpt-4o-mini`), or a model id with MODEL_BASE_URL."""
    spec = settings.model.strip()
    if settings.model_base_url:
        model_id = spec.split(":", 1)[1] if spec.startswith("openai-like:") else spec
        if not model_id or model_id == "offline":
            raise ModelSettingError("set AGNO_GRAPHQL_MODEL to the served model's id when MODEL_BASE_URL is set")
        return CompatibleModel(
            id=model_id,
            base_url=settings.model_base_url,
            api_key=settings.model_api_key or "none",
            timeout=settings.model_timeout_seconds,
            max_retries=settings.model_max_retries,
        )
    if spec in ("", OFFLINE_PROVIDER) or spec.startswith(f"{OFFLINE_PROVIDER}:"):
        return OfflineModel(delay_seconds=settings.offline_delay_ms / 1000)
    if ":" not in spec:
        raise ModelSettingError(f"AGNO_GRAPHQL_MODEL={spec!r}: use offline or provider:model_id, e.g. openai:gpt-4o")
    try:
        model = get_model(spec)
    except (ImportError, ValueError) as exc:
        raise ModelSettingError(f"AGNO_GRAPHQL_MODEL={spec!r} cannot be used: {exc}") from None
    if model is None:
        raise ModelSettingError(f"AGNO_GRAPHQL_MODEL={spec!r} names no model")
    return model


def model_provider(model: Model) -> str:
    return (model.provider or type(model).__name__).lower()


class ProviderFailure(ModelProviderError):
    """A provider failure with its code in `type`, which Agno hands on as the RunError's `error_type`."""

    def __init__(self, code: str, message: str, status_code: int = 502) -> None:
        super().__init__(message, status_code=status_code)
        self.type = failure_type(code)


class ProviderRateLimited(ModelRateLimitError):
    """A 429. A ModelRateLimitError, so that Agno's own classification keeps it (and its `type`) as it is."""

    def __init__(self, message: str, retry_after_seconds: int | None) -> None:
        super().__init__(message, status_code=429)
        self.type = failure_type(MODEL_RATE_LIMITED, retry_after_seconds)


def _causes(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def _retry_after(response: Any) -> int | None:
    """Whole seconds from the response's Retry-After (or retry-after-ms) header, rounded up."""
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    for header, divisor in (("retry-after-ms", 1000), ("retry-after", 1)):
        try:
            seconds = float(headers.get(header)) / divisor
        except (TypeError, ValueError):
            continue
        if math.isfinite(seconds) and seconds >= 0:
            return math.ceil(seconds)
    return None


def classify_failure(exc: BaseException, timeout_seconds: float | None) -> ModelProviderError:
    """What went wrong with the provider, from the OpenAI client's exception under Agno's."""
    import openai

    chain = _causes(exc)
    # The SDK's aiohttp transport reports a refused connection as a connect timeout: a refusal under it is no wait.
    refused = any(isinstance(cause, ConnectionError) for cause in chain)
    for cause in chain:
        if isinstance(cause, openai.APITimeoutError) and not refused:
            wait = f"{timeout_seconds:g} s" if timeout_seconds else "the timeout"
            return ProviderFailure(MODEL_TIMEOUT, f"The model provider sent nothing for {wait}.", status_code=504)
        if isinstance(cause, openai.APIStatusError) and cause.status_code == 429:
            retry_after = _retry_after(cause.response)
            hint = f" Try again in {retry_after} s." if retry_after is not None else " Try again later."
            return ProviderRateLimited("The model provider is rate limiting requests (HTTP 429)." + hint, retry_after)
        if isinstance(cause, openai.APIStatusError) and cause.status_code >= 500:
            message = f"The model provider is unavailable (HTTP {cause.status_code})."
            return ProviderFailure(MODEL_UNAVAILABLE, message, status_code=cause.status_code)
        if isinstance(cause, openai.APIConnectionError):
            message = "The model provider could not be reached, or the connection broke off mid-answer."
            return ProviderFailure(MODEL_UNAVAILABLE, message)
        if isinstance(cause, json.JSONDecodeError):
            return ProviderFailure(MODEL_BAD_RESPONSE, "The model provider sent a chunk that is not valid JSON.")
    if isinstance(exc, ModelProviderError):
        return exc
    return ProviderFailure(MODEL_ERROR, f"The model provider failed: {exc}")


# The finish reasons seen in the stream being read in this task (the OpenAI client hides whether [DONE] came).
_finish_reasons: ContextVar[list[str] | None] = ContextVar("finish_reasons", default=None)


class CompatibleModel(OpenAILike):
    """Agno's OpenAILike, with each failure of the provider told apart (see `classify_failure`), a stream that ends
    without a finish reason taken for what it is (an answer that broke off, not a complete one), and plain content
    chunks read without the SDK's costly cast (`compat/openai_parts.py`)."""

    def get_async_client(self) -> AsyncOpenAI:
        if self.async_client is None or self.async_client.is_closed():
            self.async_client = lean_async_client(self)
        return self.async_client

    async def aclose(self) -> None:
        """Close the client this model made (its connections to the provider), if any."""
        if self.async_client is not None:
            await self.async_client.close()

    async def ainvoke_stream(self, *args: Any, **kwargs: Any) -> AsyncIterator[ModelResponse]:
        finish_reasons: list[str] = []
        token = _finish_reasons.set(finish_reasons)
        try:
            async for response in super().ainvoke_stream(*args, **kwargs):
                yield response
        except ModelProviderError as exc:
            raise classify_failure(exc, self.timeout) from exc
        finally:
            with suppress(ValueError):
                _finish_reasons.reset(token)
        if not finish_reasons:
            message = "The model provider's answer broke off: its stream ended without a finish reason."
            raise ProviderFailure(MODEL_UNAVAILABLE, message)

    def _parse_provider_response_delta(self, response_delta: Any) -> ModelResponse:
        choices = getattr(response_delta, "choices", None) or []
        reason = getattr(choices[0], "finish_reason", None) if choices else None
        finish_reasons = _finish_reasons.get()
        if reason and finish_reasons is not None:
            finish_reasons.append(str(reason))
        return super()._parse_provider_response_delta(response_delta)

    async def ainvoke(self, *args: Any, **kwargs: Any) -> ModelResponse:
        try:
            return await super().ainvoke(*args, **kwargs)
        except ModelProviderError as exc:
            raise classify_failure(exc, self.timeout) from exc

"""Choosing the model from settings: the offline demo model, an Agno provider, or an OpenAI-compatible URL."""

from __future__ import annotations

from agno.models.base import Model
from agno.models.utils import get_model

from agno_graphql.agents.offline import OFFLINE_PROVIDER, OfflineModel
from agno_graphql.settings import Settings, SettingsError


class ModelSettingError(SettingsError):
    """The MODEL setting names no usable model; the message says why."""


def build_model(settings: Settings) -> Model:
    """`offline` (default), `provider:model_id` (e.g. `openai:gpt-4o-mini`), or a model id with MODEL_BASE_URL."""
    spec = settings.model.strip()
    if settings.model_base_url:
        from agno.models.openai.like import OpenAILike

        model_id = spec.split(":", 1)[1] if spec.startswith("openai-like:") else spec
        if not model_id or model_id == "offline":
            raise ModelSettingError("set AGNO_GRAPHQL_MODEL to the served model's id when MODEL_BASE_URL is set")
        return OpenAILike(id=model_id, base_url=settings.model_base_url, api_key=settings.model_api_key or "none")
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

"""Settings from `AGNO_GRAPHQL_*` environment variables and an optional `.env` file."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from dotenv import dotenv_values

from agno_graphql.media.types import DEFAULT_TYPES, KIND_OF_TYPE, normalized

PREFIX = "AGNO_GRAPHQL_"


class SettingsError(ValueError):
    """A setting cannot be used; the message says which and how to fix it. The CLI prints it, no traceback."""


def _parse_bool(name: str, raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise SettingsError(f"{PREFIX}{name} must be true or false, not {raw!r}")


def _parse_list(raw: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip())


@dataclass(frozen=True)
class Settings:
    """Every setting with its default. Field names are the variable names without the prefix."""

    database_url: str = ""
    state_dir: str = "./.agno-graphql"
    jwt_secret: str = ""
    jwt_public_key_file: str = ""
    jwt_algorithms: tuple[str, ...] = ()
    jwt_audience: str = ""
    jwt_issuer: str = ""
    jwt_leeway_seconds: int = 30
    denied_users_file: str = ""
    model: str = "offline"
    model_base_url: str = ""
    model_api_key: str = ""
    model_timeout_seconds: float = 60.0
    model_max_retries: int = 1
    tool_timeout_seconds: float = 30.0
    offline_delay_ms: int = 20
    agents: str = ""
    graphiql: bool = True
    introspection: bool = True
    max_query_depth: int = 12
    max_aliases: int = 30
    max_tokens: int = 2000
    max_nodes: int = 10_000
    max_body_bytes: int = 1_000_000
    max_message_chars: int = 32_000
    connection_init_timeout_seconds: float = 10.0
    max_subscriptions_per_connection: int = 20
    ws_compression: bool = False
    allowed_origins: tuple[str, ...] = ()
    page_size_default: int = 20
    page_size_max: int = 100
    cancel_grace_seconds: float = 10.0
    redis_url: str = ""
    redis_prefix: str = "agql"
    persisted_queries_cache_size: int = 1000
    persisted_queries_ttl_seconds: int = 7 * 24 * 3600
    trusted_documents: str = ""
    run_timeout_seconds: float = 600.0
    max_runs_per_user: int = 5
    max_queued_per_session: int = 5
    run_events_max: int = 10_000
    run_events_retention_seconds: float = 600.0
    shutdown_grace_seconds: float = 30.0
    run_lease_seconds: float = 30.0
    stream_coalesce_ms: int = 10
    store_retry_seconds: float = 30.0
    max_attachment_bytes: int = 20 * 1024 * 1024
    max_attachments_per_message: int = 10
    attachment_types: tuple[str, ...] = DEFAULT_TYPES
    attachment_unused_seconds: float = 3600.0
    attachment_url_seconds: int = 900
    attachment_url_secret: str = ""
    public_base_url: str = ""
    media_dir: str = ""
    media_s3_bucket: str = ""
    media_s3_prefix: str = "agno-graphql/media/"
    media_s3_endpoint: str = ""
    media_s3_region: str = ""
    media_s3_access_key_id: str = ""
    media_s3_secret_access_key: str = ""
    metrics: bool = False
    log_level: str = "info"
    log_format: str = "text"
    trace_resolvers: bool = False

    @property
    def state_path(self) -> Path:
        return Path(self.state_dir)

    @property
    def media_path(self) -> Path:
        return Path(self.media_dir) if self.media_dir else self.state_path / "media"

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.state_path / 'agno-graphql.db').as_posix()}"

    @property
    def effective_jwt_algorithms(self) -> tuple[str, ...]:
        if self.jwt_algorithms:
            return self.jwt_algorithms
        return ("RS256", "ES256") if self.jwt_public_key_file else ("HS256",)


def _convert(name: str, annotation: Any, raw: str) -> Any:
    kind = str(annotation)
    try:
        if kind == "bool":
            return _parse_bool(name, raw)
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
    except ValueError:
        raise SettingsError(f"{PREFIX}{name} must be a number, not {raw!r}") from None
    if kind.startswith("tuple"):
        return _parse_list(raw)
    return raw


def load_settings(environ: Mapping[str, str] | None = None, env_file: str | None = ".env") -> Settings:
    """Read settings: the process environment wins over the `.env` file."""
    values: dict[str, str] = {}
    if env_file and Path(env_file).is_file():
        values.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
    values.update(os.environ if environ is None else environ)
    kwargs: dict[str, Any] = {}
    for f in fields(Settings):
        raw = values.get(f"{PREFIX}{f.name.upper()}")
        if raw is None or raw == "":
            continue
        kwargs[f.name] = _convert(f.name.upper(), f.type, raw)
    settings = Settings(**kwargs)
    _validate(settings)
    return settings


def _validate(settings: Settings) -> None:
    positive = ["max_query_depth", "max_aliases", "max_tokens", "max_body_bytes", "max_message_chars"]
    positive += ["max_nodes"]
    positive += ["max_subscriptions_per_connection", "page_size_default", "page_size_max"]
    positive += ["run_timeout_seconds", "max_runs_per_user", "run_events_max", "run_lease_seconds"]
    positive += ["max_queued_per_session", "max_attachment_bytes", "max_attachments_per_message"]
    positive += ["attachment_unused_seconds", "attachment_url_seconds"]
    positive += ["persisted_queries_cache_size", "persisted_queries_ttl_seconds"]
    positive += ["model_timeout_seconds", "tool_timeout_seconds"]
    for name in positive:
        if getattr(settings, name) <= 0:
            raise SettingsError(f"{PREFIX}{name.upper()} must be a positive number")
    if settings.page_size_default > settings.page_size_max:
        raise SettingsError(f"{PREFIX}PAGE_SIZE_DEFAULT must not exceed {PREFIX}PAGE_SIZE_MAX")
    non_negative = ["cancel_grace_seconds", "run_events_retention_seconds", "shutdown_grace_seconds"]
    non_negative += ["store_retry_seconds", "stream_coalesce_ms", "model_max_retries", "offline_delay_ms"]
    for name in non_negative:
        if getattr(settings, name) < 0:
            raise SettingsError(f"{PREFIX}{name.upper()} must not be negative")
    if settings.redis_url and not settings.redis_url.startswith(("redis://", "rediss://", "unix://")):
        raise SettingsError(f"{PREFIX}REDIS_URL must start with redis://, rediss:// or unix://")
    unknown = [t for t in settings.attachment_types if normalized(t) not in KIND_OF_TYPE]
    if unknown:
        known = ", ".join(KIND_OF_TYPE)
        raise SettingsError(f"{PREFIX}ATTACHMENT_TYPES: {', '.join(unknown)} unknown; the known types: {known}")
    if settings.public_base_url and not settings.public_base_url.startswith(("http://", "https://")):
        raise SettingsError(f"{PREFIX}PUBLIC_BASE_URL must start with http:// or https://")
    if settings.log_format not in ("text", "json"):
        raise SettingsError(f"{PREFIX}LOG_FORMAT must be text or json, not {settings.log_format!r}")

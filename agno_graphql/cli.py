"""The `agno-graphql` command: serve, token, export-schema."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from agno_graphql.auth import ensure_secret, mint_token
from agno_graphql.logs import configure_logging
from agno_graphql.settings import Settings, SettingsError, load_settings

DEV_TOKEN_TTL = 7 * 24 * 3600


WS_MAX_MESSAGE_BYTES = 1_048_576


def server_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's options that are part of the product, for `serve` and the tests' servers alike.

    Websocket compression is off unless asked for: each compressed connection keeps zlib state (measured
    ~64 KiB of RSS per open subscription) for deltas of a few dozen bytes; Node's `ws` server makes the same
    choice by default.

    On SIGTERM uvicorn waits for HTTP responses still streaming (runs followed over SSE or multipart) before the
    app's shutdown: that wait is bounded by the shutdown grace too, so such a run is cancelled and stored instead
    of outliving the grace (a run can so get up to twice the grace: the wait, then the run manager's)."""
    # The app closes a frame over MAX_BODY_BYTES with 1009 itself; uvicorn's own limit must not be lower.
    frame_limit = max(WS_MAX_MESSAGE_BYTES, settings.max_body_bytes)
    return {
        "ws_max_size": frame_limit,
        "ws_per_message_deflate": settings.ws_compression,
        "timeout_graceful_shutdown": settings.shutdown_grace_seconds,
    }


def _fail(message: str) -> int:
    print(f"agno-graphql: {message}", file=sys.stderr)
    return 2


def _serve(settings: Settings, host: str, port: int, workers: int, log_config: dict[str, Any] | None) -> int:
    import uvicorn

    from agno_graphql.app import build_services, create_app, freeze_startup_objects

    if workers > 1 and not settings.redis_url:
        return _fail(
            "--workers above 1 needs AGNO_GRAPHQL_REDIS_URL: without a shared Redis, a run could not be "
            "resumed, cancelled or kept to one per session from another worker. Set it, or run one worker."
        )
    if workers < 1:
        return _fail("--workers must be 1 or more")
    if settings.redis_url and (problem := _redis_problem(settings.redis_url)):
        return _fail(f"cannot reach Redis at AGNO_GRAPHQL_REDIS_URL: {problem}")
    # Before the services, so that a secret generated now is reported as such (and shared by workers).
    local_secret = None if settings.jwt_public_key_file or settings.jwt_secret else ensure_secret(settings)
    app = create_app(settings, build_services(settings)) if workers == 1 else None
    from agno_graphql.web import CHAT_PATH, chat_is_built

    print(f"GraphQL and GraphiQL: http://{host}:{port}/graphql")
    if chat_is_built():
        print(f"Chat page: http://{host}:{port}{CHAT_PATH}")
    else:
        print("Chat page: run `make web` to build it, then open /chat")
    print(f"Database: {_shown_database(settings)}")
    if local_secret is not None:
        secret, created = local_secret
        if created:
            print(f"Generated a JWT secret in {settings.state_path / 'jwt-secret'} (mode 0600).")
        token = mint_token(secret, "dev-user", DEV_TOKEN_TTL, settings)
        print("A development token for user 'dev-user' (valid 7 days); in GraphiQL's headers box paste:")
        print(f'  {{"Authorization": "Bearer {token}"}}')
    else:
        print("Tokens come from your identity provider (or `agno-graphql token USER_ID` with the shared secret).")
    sys.stdout.flush()
    options = {
        "host": host,
        "port": port,
        "log_level": settings.log_level,
        "log_config": log_config,
        **server_options(settings),
    }
    if app is not None:
        freeze_startup_objects()
        uvicorn.run(app, **options)
    else:
        # Each worker process builds its own app from the same environment.
        uvicorn.run("agno_graphql.app:app_from_environment", factory=True, workers=workers, **options)
    return 0


def _shown_database(settings: Settings) -> str:
    """The database in use, its password hidden."""
    from sqlalchemy.engine import make_url

    url = make_url(settings.effective_database_url)
    embedded = " (SQLite, the embedded default; set AGNO_GRAPHQL_DATABASE_URL for MySQL/MariaDB)"
    return url.render_as_string(hide_password=True) + (embedded if not settings.database_url else "")


def _redis_problem(url: str) -> str | None:
    """Why Redis cannot be used, or None: checked before serving, so a wrong URL is a clear startup error."""
    from redis import Redis
    from redis.exceptions import RedisError

    try:
        Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3).ping()
    except (RedisError, OSError, ValueError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def _token(settings: Settings, user_id: str, ttl: int) -> int:
    if settings.jwt_public_key_file and not settings.jwt_secret:
        return _fail("tokens can only be minted with a shared secret (AGNO_GRAPHQL_JWT_SECRET), not public keys")
    if not user_id.strip() or len(user_id) > 128:
        return _fail("USER_ID must be 1 to 128 characters")
    if ttl <= 0:
        return _fail("--ttl must be positive")
    secret, _created = ensure_secret(settings)
    print(mint_token(secret, user_id, ttl, settings))
    return 0


def _export_schema() -> int:
    from agno_graphql.api import schema

    print(schema.as_str())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="agno-graphql", description="A GraphQL server for Agno agents.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="start the server")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    token = commands.add_parser("token", help="print a development token for a user")
    token.add_argument("user_id", metavar="USER_ID")
    token.add_argument("--ttl", type=int, default=DEV_TOKEN_TTL, help="seconds the token is valid")
    commands.add_parser("export-schema", help="print the schema (SDL)")
    args = parser.parse_args(argv)

    if args.command == "export-schema":
        return _export_schema()
    try:
        settings = load_settings()
        log_config = configure_logging(settings.log_level, settings.log_format)
        if args.command == "token":
            return _token(settings, args.user_id, args.ttl)
        return _serve(settings, args.host, args.port, args.workers, log_config)
    except SettingsError as exc:
        return _fail(str(exc))


if __name__ == "__main__":
    sys.exit(main())

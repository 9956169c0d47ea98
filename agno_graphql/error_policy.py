"""What clients see of errors: a code on every error, and nothing of unexpected ones.

Expected errors (AppError) keep their message and get their code. A database
that cannot be reached is DB_UNAVAILABLE; Redis, BROKER_UNAVAILABLE. Parse and validation errors get the
codes Apollo uses. Anything else is masked as INTERNAL_SERVER_ERROR with a
request id, and logged with its traceback under the same id.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from graphql import GraphQLError
from redis.exceptions import RedisError
from sqlalchemy.exc import DBAPIError, DisconnectionError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from strawberry.exceptions import MissingQueryError
from strawberry.extensions.mask_errors import MaskErrors
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError

from agno_graphql.errors import (
    INTERNAL_SERVER_ERROR,
    AppError,
    BrokerUnavailable,
    DatabaseUnavailable,
    pre_execution_code,
)

log = logging.getLogger("agno_graphql.errors")

BAD_REQUEST = "BAD_REQUEST"
# The request cannot be run as sent: an operationName the document lacks, an operation type the transport does
# not carry (a mutation over multipart subscriptions), no query. Over plain HTTP Strawberry makes them a 400;
# over SSE and multipart they arrive here as errors.
_REQUEST_ERRORS = (CannotGetOperationTypeError, InvalidOperationTypeError, MissingQueryError)

_UNREACHABLE = (OperationalError, DisconnectionError, PoolTimeout, ConnectionError, OSError)


def _is_redis_error(error: BaseException | None) -> bool:
    while error is not None:
        if isinstance(error, RedisError):
            return True
        error = error.__cause__ or error.__context__
    return False


def _is_unreachable_database(error: BaseException | None) -> bool:
    while error is not None:
        if isinstance(error, _UNREACHABLE) or (isinstance(error, DBAPIError) and error.connection_invalidated):
            return True
        error = error.__cause__ or error.__context__
    return False


def coded_error(error: GraphQLError, request_id: str) -> GraphQLError:
    original = error.original_error
    if isinstance(original, GraphQLError) and original is not error:
        return coded_error(original, request_id)
    if isinstance(original, AppError):
        extensions = {**(error.extensions or {}), "code": original.code, **original.details}
        return _with(error, original.message, extensions)
    if isinstance(original, _REQUEST_ERRORS):
        return _with(error, error.message, {**(error.extensions or {}), "code": BAD_REQUEST})
    if original is None:
        extensions = dict(error.extensions or {})
        extensions.setdefault("code", pre_execution_code(error))
        return _with(error, error.message, extensions)
    if _is_redis_error(original):
        broker = BrokerUnavailable()
        log.warning("request %s: Redis unavailable: %s", request_id, type(original).__name__)
        return _with(error, broker.message, {"code": broker.code, "requestId": request_id})
    if _is_unreachable_database(original):
        unavailable = DatabaseUnavailable()
        log.warning("request %s: database unavailable: %s", request_id, type(original).__name__)
        return _with(error, unavailable.message, {"code": unavailable.code, "requestId": request_id})
    log.error("request %s: unexpected error", request_id, exc_info=original)
    return _with(error, "Internal server error.", {"code": INTERNAL_SERVER_ERROR, "requestId": request_id})


def _with(error: GraphQLError, message: str, extensions: dict[str, object]) -> GraphQLError:
    return GraphQLError(
        message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        original_error=None,
        extensions=extensions,
    )


class ErrorPolicy(MaskErrors):
    """Strawberry's error masking, with codes for the errors that are shown."""

    @staticmethod
    def leaves_stream_result(result: Any) -> bool:
        """Most events of a subscription carry no error: the extensions runner passes them on without this hook
        (LeanExtensionsRunner), and without Strawberry's check of every result against a runtime protocol."""
        return not any(getattr(result, part, None) for part in ("errors", "incremental", "completed"))

    def on_stream_result(self, result: Any) -> Iterator[None]:
        if self.leaves_stream_result(result):
            yield None
        else:
            yield from super().on_stream_result(result)

    def _request_id(self) -> str:
        context = self.execution_context.context
        return str(getattr(context, "request_id", "-"))

    def _process_errors(self, errors: list[GraphQLError]) -> list[GraphQLError]:
        request_id = self._request_id()
        return [coded_error(error, request_id) for error in errors]

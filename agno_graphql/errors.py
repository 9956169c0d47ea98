"""Errors that reach clients, each with a stable `extensions.code`."""

from __future__ import annotations

from typing import Any

from graphql import GraphQLError, GraphQLSyntaxError

UNAUTHENTICATED = "UNAUTHENTICATED"
NOT_FOUND = "NOT_FOUND"
BAD_USER_INPUT = "BAD_USER_INPUT"
INTERNAL_SERVER_ERROR = "INTERNAL_SERVER_ERROR"
DB_UNAVAILABLE = "DB_UNAVAILABLE"
MEDIA_STORE_FAILED = "MEDIA_STORE_FAILED"
GRAPHQL_VALIDATION_FAILED = "GRAPHQL_VALIDATION_FAILED"
GRAPHQL_PARSE_FAILED = "GRAPHQL_PARSE_FAILED"
SESSION_BUSY = "SESSION_BUSY"
RATE_LIMITED = "RATE_LIMITED"
SHUTTING_DOWN = "SHUTTING_DOWN"
EVENTS_EXPIRED = "EVENTS_EXPIRED"
BROKER_UNAVAILABLE = "BROKER_UNAVAILABLE"
RUN_NOT_PAUSED = "RUN_NOT_PAUSED"
NOT_LATEST_RUN = "NOT_LATEST_RUN"
QUERY_TOO_COMPLEX = "QUERY_TOO_COMPLEX"


class AppError(Exception):
    """An expected failure the client can act on. Raised by domain code, shown as is."""

    code = INTERNAL_SERVER_ERROR

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def as_graphql_error(self) -> GraphQLError:
        return GraphQLError(self.message, extensions={"code": self.code, **self.details})


class NotFound(AppError):
    code = NOT_FOUND


class BadUserInput(AppError):
    code = BAD_USER_INPUT


class Unauthenticated(AppError):
    code = UNAUTHENTICATED


class DatabaseUnavailable(AppError):
    code = DB_UNAVAILABLE

    def __init__(self, message: str = "The database is unavailable; try again shortly.") -> None:
        super().__init__(message)


class BrokerUnavailable(AppError):
    code = BROKER_UNAVAILABLE

    def __init__(self, message: str = "Redis, which coordinates runs, is unavailable; try again shortly.") -> None:
        super().__init__(message)


class SessionBusy(AppError):
    code = SESSION_BUSY


class RateLimited(AppError):
    code = RATE_LIMITED


class ShuttingDown(AppError):
    code = SHUTTING_DOWN


class RunNotPaused(AppError):
    """A continuation asked for a run that is not waiting for answers (running, ended, or taken first)."""

    code = RUN_NOT_PAUSED


class NotLatestRun(AppError):
    """Only a session's latest run can be regenerated."""

    code = NOT_LATEST_RUN


class EventsExpired(AppError):
    """The events a follower asked for were dropped from the run's bounded buffer."""

    code = EVENTS_EXPIRED


class QueryTooComplex(AppError):
    """The operation would ask for more nodes than the limit allows; counted before it runs (node_limit.py)."""

    code = QUERY_TOO_COMPLEX

    def __init__(self, nodes: int, limit: int) -> None:
        super().__init__(
            f"The operation asks for up to {nodes} nodes; at most {limit} are allowed. Ask for smaller pages.",
            nodes=nodes,
            limit=limit,
        )


def pre_execution_code(error: GraphQLError) -> str:
    """The code of an error found before execution: the document did not parse, or did not validate."""
    return GRAPHQL_PARSE_FAILED if isinstance(error, GraphQLSyntaxError) else GRAPHQL_VALIDATION_FAILED

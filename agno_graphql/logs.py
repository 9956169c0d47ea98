"""What the server logs. At the default level (info) a person sees the banner and real warnings and errors; the
routine lines of uvicorn (its startup, one line per request) and of Agno (its setup, each run) are debug lines,
shown with AGNO_GRAPHQL_LOG_LEVEL=debug. With AGNO_GRAPHQL_LOG_FORMAT=json every line, uvicorn's and Agno's
included, is one JSON object: time, level, message, and the requestId, traceId and userId of the request it
belongs to, where known."""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from opentelemetry import trace
from pythonjsonlogger.json import JsonFormatter

# Loggers whose INFO lines are routine: uvicorn's server and access logs, Agno's (which does not propagate).
ROUTINE_LOGGERS = ("uvicorn.error", "uvicorn.access", "agno", "agno-team", "agno-workflow")
AGNO_LOGGERS = ("agno", "agno-team", "agno-workflow")
LOG_FORMATS = ("text", "json")


@dataclass
class RequestFields:
    """Who and what a log line is about: set as a request (or socket) begins, the user once it is known. Tasks
    started while it is current (a run, an operation on a socket) log with it too."""

    request_id: str
    user_id: str | None = None


_request: ContextVar[RequestFields | None] = ContextVar("agno_graphql_request", default=None)


def begin_request(request_id: str) -> RequestFields:
    fields = RequestFields(request_id)
    _request.set(fields)
    return fields


def note_user(user_id: str) -> None:
    """The current request's user, once authenticated."""
    fields = _request.get()
    if fields is not None:
        fields.user_id = user_id


class RoutineToDebug(logging.Filter):
    """An INFO line of a routine logger becomes a DEBUG line: kept only when debug lines are shown."""

    def __init__(self, show_debug: bool) -> None:
        super().__init__()
        self.show_debug = show_debug

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO:
            return True
        if not self.show_debug:
            return False
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return True


class JsonLines(JsonFormatter):
    """One JSON object a line: `time` (ISO 8601, UTC), `level` (lower case), `message`, `logger`, the request's
    `requestId`, `userId` and the current span's `traceId` where known, and `exception` when there is one."""

    def __init__(self) -> None:
        super().__init__(["message"], rename_fields={"exc_info": "exception"})

    def add_fields(self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]) -> None:
        log_data["time"] = datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds")
        log_data["level"] = record.levelname.lower()
        super().add_fields(log_data, record, message_dict)
        log_data["logger"] = record.name
        log_data.pop("color_message", None)  # uvicorn's coloured copy of the message
        fields = _request.get()
        if fields is not None:
            log_data["requestId"] = fields.request_id
            if fields.user_id:
                log_data["userId"] = fields.user_id
        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            log_data["traceId"] = format(span.trace_id, "032x")


def configure_logging(level: str, log_format: str = "text") -> dict[str, Any] | None:
    """Set up the process's logging; the `log_config` to give uvicorn (None: uvicorn adds nothing of its own)."""
    # Agno makes its loggers when imported (its own class, with its own handler): after that, they get the filter.
    import agno.utils.log  # noqa: F401

    routine = RoutineToDebug(show_debug=level.lower() == "debug")
    for name in ROUTINE_LOGGERS:
        logging.getLogger(name).addFilter(routine)
    if log_format != "json":
        logging.basicConfig(level=level.upper(), format="%(levelname)s %(name)s: %(message)s")
        return uvicorn_text_config()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLines())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in AGNO_LOGGERS:
        agno_logger = logging.getLogger(name)
        agno_logger.handlers[:] = []
        agno_logger.propagate = True
    return None


def uvicorn_text_config() -> dict[str, Any]:
    """uvicorn's own text format (its default configuration)."""
    from uvicorn.config import LOGGING_CONFIG

    return LOGGING_CONFIG

"""What the server logs. At the default level (info) a person sees the banner and real warnings and errors; the
routine lines of uvicorn (its startup, one line per request) and of Agno (its setup, each run) are debug lines,
shown with AGNO_GRAPHQL_LOG_LEVEL=debug."""

from __future__ import annotations

import logging

# Loggers whose INFO lines are routine: uvicorn's server and access logs, Agno's (which does not propagate).
ROUTINE_LOGGERS = ("uvicorn.error", "uvicorn.access", "agno", "agno-team", "agno-workflow")


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


def configure_logging(level: str) -> None:
    # Agno makes its loggers when imported (its own class, with its own handler): after that, they get the filter.
    import agno.utils.log  # noqa: F401

    logging.basicConfig(level=level.upper(), format="%(levelname)s %(name)s: %(message)s")
    routine = RoutineToDebug(show_debug=level.lower() == "debug")
    for name in ROUTINE_LOGGERS:
        logging.getLogger(name).addFilter(routine)

"""Agno's AgentOS over the benchmark database, with the same agents: `python -m bench.agentos_app URL PORT`.

The database object is our `AgnoMySQLDb` (Agno's AsyncMySQLDb with the JSON column types
restored on reflected tables): without it AgentOS answers `GET /sessions` with a 500 on MariaDB
once its tables exist (they come back as text). That is the only change to AgentOS.
"""

from __future__ import annotations

import os
import sys

import uvicorn
from agno.os import AgentOS
from fastapi import FastAPI

from agno_graphql.db.database import Database
from bench.agents import bench_agents


def build_app(database_url: str) -> FastAPI:
    db = Database(database_url).agno_db
    agents = bench_agents()
    for agent in agents:
        agent.db = db
    return AgentOS(agents=agents, db=db, telemetry=False).get_app()


def main() -> None:
    os.environ.setdefault("AGNO_TELEMETRY", "false")
    database_url, port = sys.argv[1], int(sys.argv[2])
    uvicorn.run(build_app(database_url), host="127.0.0.1", port=port, log_level="warning", workers=1)


if __name__ == "__main__":
    main()

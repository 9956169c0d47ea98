"""The limit: a plain Starlette app running the same SQL as agno-graphql, straight through asyncmy (the driver
agno-graphql reads with).

`python -m bench.limit_app URL PORT`. No GraphQL, no ORM, no auth: what one request costs when
all that is left is the database round trips and building the JSON.
  GET /sessions?user_id=U&limit=20         one page of a user's sessions, newest activity first
  GET /messages?session_id=S&last=50       the newest messages of a session, read run by run from the end
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import AsyncIterator
from typing import Any

import asyncmy
import uvicorn
from sqlalchemy.engine import make_url
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from agno_graphql.db.history import first_batch, next_batch

SESSIONS_SQL = (
    "SELECT session_id, agent_id, user_id, JSON_UNQUOTE(JSON_EXTRACT(session_data, '$.session_name')), "
    "created_at, updated_at FROM agno_sessions "
    "WHERE user_id = %s AND CAST(user_id AS BINARY) = CAST(%s AS BINARY) AND session_type = 'agent' "
    "ORDER BY updated_at DESC, session_id DESC LIMIT %s"
)
FIRST_INPUTS_SQL = (
    "SELECT session_id, JSON_UNQUOTE(JSON_EXTRACT(run_data, '$.input.input_content')) FROM agno_runs "
    "WHERE session_id IN ({}) AND run_index = 0"
)
RUNS_SQL = (
    "SELECT run_id, run_index, run_data, created_at FROM agno_runs "
    "WHERE session_id = %s AND run_index < %s ORDER BY run_index DESC LIMIT %s"
)
ROLES = {"user", "assistant", "tool"}


def build_app(database_url: str) -> Starlette:
    url = make_url(database_url)
    pool: dict[str, Any] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        pool["pool"] = await asyncmy.create_pool(
            host=url.host or "127.0.0.1",
            port=url.port or 3306,
            user=url.username or "root",
            password=url.password or "",
            db=url.database,
            minsize=1,
            maxsize=10,
            autocommit=True,
        )
        yield
        pool["pool"].close()
        await pool["pool"].wait_closed()

    async def query(sql: str, args: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        async with pool["pool"].acquire() as conn, conn.cursor() as cursor:
            await cursor.execute(sql, args)
            return list(await cursor.fetchall())

    async def sessions(request: Request) -> Response:
        user_id = request.query_params["user_id"]
        limit = int(request.query_params.get("limit", "20"))
        rows = await query(SESSIONS_SQL, (user_id, user_id, limit + 1))
        page = rows[:limit]
        unnamed = [row[0] for row in page if not row[3]]
        titles: dict[str, Any] = {}
        if unnamed:
            placeholders = ", ".join(["%s"] * len(unnamed))
            titles = dict(await query(FIRST_INPUTS_SQL.format(placeholders), tuple(unnamed)))
        data = [
            {
                "id": row[0],
                "agentId": row[1],
                "name": row[3] or titles.get(row[0]),
                "createdAt": row[4],
                "updatedAt": row[5],
            }
            for row in page
        ]
        return JSONResponse({"sessions": data, "hasNextPage": len(rows) > limit})

    async def messages(request: Request) -> Response:
        session_id = request.query_params["session_id"]
        wanted = int(request.query_params.get("last", "50"))
        collected: list[dict[str, Any]] = []
        # The same batches as agno-graphql's (agno_graphql/db/history.py), so both read the same runs.
        bound, batch, runs_read = 2**31, first_batch(wanted + 1), 0
        while len(collected) < wanted + 1:
            rows = await query(RUNS_SQL, (session_id, bound, batch))
            for run_id, _run_index, run_data, _created_at in rows:
                run_messages = json.loads(run_data).get("messages") or []
                own = [
                    {"id": m.get("id"), "runId": run_id, "role": m.get("role"), "content": m.get("content")}
                    for m in run_messages
                    if m.get("role") in ROLES and not m.get("from_history")
                ]
                collected.extend(reversed(own))
                runs_read += 1
                if len(collected) >= wanted + 1:
                    break
            if len(rows) < batch or len(collected) >= wanted + 1:
                break
            bound = rows[-1][1]
            batch = next_batch(wanted + 1 - len(collected), len(collected), runs_read, batch)
        page = list(reversed(collected[:wanted]))
        return JSONResponse({"messages": page, "hasPreviousPage": len(collected) > wanted})

    return Starlette(routes=[Route("/sessions", sessions), Route("/messages", messages)], lifespan=lifespan)


def main() -> None:
    database_url, port = sys.argv[1], int(sys.argv[2])
    uvicorn.run(build_app(database_url), host="127.0.0.1", port=port, log_level="warning", workers=1)


if __name__ == "__main__":
    main()

"""Runs stored before they end: a run's row as it starts, and what becomes of a row whose server went away.

A run is stored when it starts (RUNNING, with the user's message), so an instance that dies mid-run loses nothing
the user sent. Agno's final write of the run replaces the row (keeping its run_index). Agno reads a session's runs
when a run starts and does not skip RUNNING ones; it reads each run's status from its run_data, though, and leaves
ERROR runs out of the history it gives the model. So an unfinished row says ERROR in its run_data (what it will be
should nobody finish it) and RUNNING in its status column, which is what every query of ours reads.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any
from uuid import uuid4

from sqlalchemy import func, select, update

from agno_graphql.db.database import Database
from agno_graphql.db.history import CANCEL_REASON_KEY, FAILURE_KEY, as_dict, metadata_of
from agno_graphql.errors import RateLimited
from agno_graphql.records import RunStart

UNFINISHED_STATUSES = ("RUNNING", "PENDING")
# Agno leaves a run whose run_data says this out of the history it gives the model.
_STATUS_FOR_AGNO = "ERROR"
RUN_TYPE = "agent"


async def store_started(db: Database, start: RunStart) -> None:
    """Store a starting run as RUNNING with the user's message, next in its session (whose lock the caller holds,
    so no other run takes the same index)."""
    await db.ensure_ready()
    async with db.engine.begin() as conn:
        await conn.execute(
            db.runs.insert().values(**_row(start, "RUNNING", await _next_index(db, conn, start.session_id)))
        )


# Where a run waiting in line stands: the line is in this order (an interrupting run's is negative: it goes first).
QUEUED_AT_KEY = "agno_graphql_queued_at"
# The instance that took the run into the line: should it die before the run starts, the run is lost.
QUEUED_BY_KEY = "agno_graphql_queued_by"


@dataclass(frozen=True)
class QueuedRun:
    start: RunStart
    queued_at: float
    queued_by: str


async def store_queued(db: Database, start: RunStart, *, by: str, ahead: bool, most: int) -> int:
    """Store a run to wait in line in its session: PENDING with the user's message, no place in the conversation
    until it starts. `ahead` puts it first (a run that interrupts). Its position (1: next); RateLimited when `most`
    wait already."""
    await db.ensure_ready()
    queued_at = -time.time() if ahead else time.time()
    start = replace(start, metadata={**start.metadata, QUEUED_AT_KEY: queued_at, QUEUED_BY_KEY: by})
    async with db.engine.begin() as conn:
        # One enqueue of a session at a time, so the line's length is checked and grown as one step (MariaDB: the
        # session's row locked; SQLite: the write first, which takes the database's write lock).
        await conn.execute(
            select(db.sessions.c.session_id).where(db.sessions.c.session_id == start.session_id).with_for_update()
        )
        await conn.execute(db.runs.insert().values(**_row(start, "PENDING", None)))
        waiting = [
            queued for queued in await _queued(db, conn, start.session_id) if queued.start.run_id != start.run_id
        ]
        if not ahead and len(waiting) >= most:
            raise RateLimited(
                f"{len(waiting)} messages wait in this session already, the most allowed; wait for one to be answered.",
                limit=most,
            )
    return 1 + sum(1 for queued in waiting if queued.queued_at < queued_at)


async def queued_runs(db: Database, session_id: str) -> list[QueuedRun]:
    """The runs waiting in line in the session, first in line first."""
    await db.ensure_ready()
    async with db.engine.connect() as conn:
        return await _queued(db, conn, session_id)


async def _queued(db: Database, conn: Any, session_id: str) -> list[QueuedRun]:
    r = db.runs
    query = select(r.c.run_id, r.c.user_id, r.c.run_data).where(r.c.session_id == session_id, r.c.status == "PENDING")
    out = []
    for run_id, user_id, run_data in (await conn.execute(query)).all():
        data = as_dict(run_data)
        metadata = metadata_of(data)
        start = RunStart(
            run_id=str(run_id),
            session_id=session_id,
            user_id=str(user_id or ""),
            agent_id=str(data.get("agent_id") or ""),
            message=str((data.get("input") or {}).get("input_content") or ""),
            created_at=float(data.get("created_at") or 0),
            metadata={k: v for k, v in metadata.items() if k not in (QUEUED_AT_KEY, QUEUED_BY_KEY)},
        )
        queued_at = metadata.get(QUEUED_AT_KEY)
        out.append(
            QueuedRun(
                start,
                float(queued_at) if isinstance(queued_at, int | float) else 0.0,
                str(metadata.get(QUEUED_BY_KEY) or ""),
            )
        )
    return sorted(out, key=lambda queued: (queued.queued_at, queued.start.run_id))


async def take_queued(db: Database, run_id: str, media: Mapping[str, Any]) -> bool:
    """Start a run that waited in line: RUNNING, next in the conversation, its message with its `media`. False if
    it no longer waits (taken by another instance, cancelled)."""
    return await _leave_line(db, run_id, "RUNNING", {}, media)


async def cancel_queued(db: Database, run_id: str, reason: str) -> bool:
    """Store a run waiting in line CANCELLED, its message in the conversation. False if it no longer waits."""
    return await _leave_line(db, run_id, "CANCELLED", {CANCEL_REASON_KEY: reason})


async def _leave_line(
    db: Database, run_id: str, status: str, metadata: Mapping[str, Any], media: Mapping[str, Any] | None = None
) -> bool:
    r = db.runs
    async with db.engine.begin() as conn:
        row = (
            await conn.execute(
                select(r.c.session_id, r.c.run_data).where(r.c.run_id == run_id, r.c.status == "PENDING")
            )
        ).first()
        if row is None:
            return False
        data = dict(as_dict(row[1]))
        data["metadata"] = {**metadata_of(data), **metadata}
        if media:
            data["messages"] = [{**message, **media} for message in data.get("messages") or ()]
        if status != "RUNNING":
            data["status"] = status
        index = await _next_index(db, conn, str(row[0]))
        changed = await conn.execute(
            update(r)
            .where(r.c.run_id == run_id, r.c.status == "PENDING")
            .values(status=status, run_index=index, run_data=data)
        )
        return bool(changed.rowcount == 1)


async def _next_index(db: Database, conn: Any, session_id: str) -> int:
    r = db.runs
    last = (await conn.execute(select(func.max(r.c.run_index)).where(r.c.session_id == session_id))).scalar()
    return 0 if last is None else int(last) + 1


def _row(start: RunStart, status: str, run_index: int | None) -> dict[str, Any]:
    created_at = int(start.created_at)
    data = {
        "run_id": start.run_id,
        "agent_id": start.agent_id,
        "session_id": start.session_id,
        "user_id": start.user_id,
        "status": _STATUS_FOR_AGNO,
        "created_at": created_at,
        "input": {"input_content": start.message},
        "content": None,
        "messages": [
            {"id": str(uuid4()), "role": "user", "content": start.message, "created_at": created_at, **start.media}
        ],
        "metadata": dict(start.metadata),
    }
    return {
        "run_id": start.run_id,
        "session_id": start.session_id,
        "run_type": RUN_TYPE,
        "agent_id": start.agent_id,
        "user_id": start.user_id,
        "status": status,
        "run_index": run_index,
        "run_data": data,
        "created_at": created_at,
        "updated_at": created_at,
    }


@dataclass(frozen=True)
class UnfinishedRun:
    run_id: str
    session_id: str
    user_id: str
    status: str
    queued_by: str  # for a run waiting in line: the instance that took it in


async def unfinished_runs(db: Database, limit: int = 1000) -> list[UnfinishedRun]:
    """Stored runs that have not ended (RUNNING or PENDING), oldest first: only their ids, from the status index."""
    await db.ensure_ready()
    r = db.runs
    query = (
        select(
            r.c.run_id, r.c.session_id, r.c.user_id, r.c.status, r.c.run_data[("metadata", QUEUED_BY_KEY)].as_string()
        )
        .where(r.c.status.in_(UNFINISHED_STATUSES))
        .order_by(r.c.created_at.asc())
        .limit(limit)
    )
    return [UnfinishedRun(str(a), str(b), str(c or ""), str(d), str(e or "")) for a, b, c, d, e in await db.read(query)]


async def store_lost(db: Database, run_id: str, code: str, message: str, content: str | None) -> bool:
    """Store an unfinished run as ERROR with `code`, keeping the user's message and adding what the model had said;
    False when the run had ended meanwhile (its own end stays)."""
    r = db.runs
    async with db.engine.begin() as conn:
        row = (
            await conn.execute(
                select(r.c.status, r.c.run_data, r.c.session_id, r.c.run_index)
                .where(r.c.run_id == run_id, r.c.status.in_(UNFINISHED_STATUSES))
                .with_for_update()
            )
        ).first()
        if row is None:
            return False
        # A run lost while it waited in line takes its place in the conversation now, its message shown.
        index = row[3] if row[3] is not None else await _next_index(db, conn, str(row[2]))
        data = dict(as_dict(row[1]))
        data["status"] = "ERROR"
        data["metadata"] = {**metadata_of(data), FAILURE_KEY: {"code": code, "message": message}}
        if content:
            data["content"] = content
            messages = [m for m in data.get("messages") or [] if isinstance(m, dict)]
            said = {"id": str(uuid4()), "role": "assistant", "content": content, "created_at": int(time.time())}
            data["messages"] = [*messages, said]
        changed = await conn.execute(
            update(r)
            .where(r.c.run_id == run_id, r.c.status == row[0])
            .values(status="ERROR", run_data=data, run_index=index)
        )
    return bool(changed.rowcount == 1)

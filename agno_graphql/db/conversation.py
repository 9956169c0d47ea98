"""The conversation edited: runs taken out of it (a regeneration, an edit), the answers to one user message, the
run holding a message, a fork's copy, and an interrupted run kept in the model's history.

A run leaves the conversation by taking Agno's REGENERATED status (so Agno leaves it out of the history it gives
the model), its own status kept in metadata; `history.in_conversation` is the filter every list and count uses.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any
from uuid import uuid4

from sqlalchemy import or_, select, text, update

from agno_graphql.db.database import Database
from agno_graphql.db.history import (
    ANSWERS_TO_KEY,
    DEFAULT_ROLES,
    NEXT_INDEX_KEY,
    REPLACED_STATUS,
    STATUS_BEFORE_KEY,
    as_dict,
    in_conversation,
    messages_of_run,
    metadata_of,
    run_columns,
    run_record,
)
from agno_graphql.db.unfinished import UNFINISHED_STATUSES
from agno_graphql.records import MessageRecord, RunRecord


async def latest_run(db: Database, session_id: str) -> RunRecord | None:
    """The session's last run in the conversation."""
    await db.ensure_ready()
    r = db.runs
    query = (
        select(*run_columns(db))
        .where(r.c.session_id == session_id, in_conversation(db))
        .order_by(r.c.run_index.desc())
        .limit(1)
    )
    rows = await db.read(query)
    return run_record(rows[0]) if rows else None


async def replace_runs(db: Database, run_ids: Sequence[str]) -> bool:
    """Take ended runs out of the conversation (and out of the history Agno gives the model), keeping the status
    each had, all or none in one transaction; False if one is not an ended run of the conversation (running,
    paused, or replaced already)."""
    r = db.runs
    try:
        async with db.engine.begin() as conn:
            for run_id in run_ids:
                row = (
                    await conn.execute(select(r.c.status, r.c.run_data).where(r.c.run_id == run_id).with_for_update())
                ).first()
                if row is None or str(row[0] or "").upper() not in ENDED_STATUSES:
                    raise _NotReplaceable
                data = dict(as_dict(row[1]))
                data["metadata"] = {**metadata_of(data), STATUS_BEFORE_KEY: str(row[0]).upper()}
                data["status"] = REPLACED_STATUS
                changed = await conn.execute(
                    update(r)
                    .where(r.c.run_id == run_id, r.c.status == row[0])
                    .values(status=REPLACED_STATUS, run_data=data)
                )
                if changed.rowcount != 1:
                    raise _NotReplaceable
    except _NotReplaceable:
        return False
    return True


class _NotReplaceable(Exception):
    """Rolls back a replacement that cannot be made whole."""


ENDED_STATUSES = ("COMPLETED", "ERROR", "CANCELLED")


async def alternatives(db: Database, session_id: str, answers_to: str) -> list[RunRecord]:
    """Every answer to the same user message, oldest first: the first run that answered it and every run whose
    metadata says it answers the same."""
    await db.ensure_ready()
    r = db.runs
    answering = r.c.run_data[("metadata", ANSWERS_TO_KEY)].as_string()
    query = (
        select(*run_columns(db))
        .where(r.c.session_id == session_id, or_(r.c.run_id == answers_to, answering == answers_to))
        .order_by(r.c.run_index.asc())
    )
    return [run_record(row) for row in await db.read(query)]


async def run_of_message(db: Database, user_id: str, message_id: str) -> tuple[RunRecord, MessageRecord] | None:
    """The run of the user's that holds a message as its own (not as history), and the message."""
    await db.ensure_ready()
    table = db.runs.name
    params = {"user_id": user_id, "message_id": message_id}
    if db.dialect == "sqlite":
        sql = (
            f"SELECT r.run_id FROM {table} r, json_each(r.run_data, '$.messages') m "
            "WHERE r.user_id = :user_id AND json_extract(m.value, '$.id') = :message_id "
            "AND COALESCE(json_extract(m.value, '$.from_history'), 0) = 0 LIMIT 1"
        )
    else:
        sql = (
            f"SELECT r.run_id FROM `{table}` r, JSON_TABLE(r.run_data, '$.messages[*]' COLUMNS("
            "id VARCHAR(128) PATH '$.id', from_history VARCHAR(8) PATH '$.from_history')) m "
            "WHERE r.user_id = :user_id AND m.id = :message_id "
            "AND (m.from_history IS NULL OR m.from_history IN ('false', '0')) LIMIT 1"
        )
    rows = await db.read(text(sql), params)
    if not rows:
        return None
    r = db.runs
    stored = await db.read(select(*run_columns(db)).where(r.c.run_id == rows[0][0]))
    if not stored:
        return None
    run = run_record(stored[0])
    messages = messages_of_run(run.id, run.run_index, stored[0][5], ALL_ROLES, run.created_at)
    message = next((m for m in messages if m.id == message_id), None)
    return (run, message) if message is not None else None


ALL_ROLES = ("system", *DEFAULT_ROLES)


async def runs_from(db: Database, session_id: str, run_index: int) -> list[RunRecord]:
    """The session's runs in the conversation from `run_index` on, in order."""
    await db.ensure_ready()
    r = db.runs
    query = (
        select(*run_columns(db))
        .where(r.c.session_id == session_id, r.c.run_index >= run_index, in_conversation(db))
        .order_by(r.c.run_index.asc())
    )
    return [run_record(row) for row in await db.read(query)]


# Our notes on a run that do not carry over to a fork: its place among alternatives, a replacement, a pause.
_NOT_FORKED = (ANSWERS_TO_KEY, STATUS_BEFORE_KEY, NEXT_INDEX_KEY)


async def forked_runs(
    db: Database, session_id: str, new_session_id: str, up_to: tuple[str, int] | None
) -> list[dict[str, Any]]:
    """The rows of a fork of the session's conversation: every run still in it, up to and including the message at
    (run id, position) when given, each with a new run id and new message ids."""
    await db.ensure_ready()
    r = db.runs
    # A run still going (or waiting in line) is not the conversation yet: it would be copied unfinished for good.
    ended = r.c.status.notin_(UNFINISHED_STATUSES)
    query = select(r).where(r.c.session_id == session_id, in_conversation(db), ended).order_by(r.c.run_index.asc())
    names = [column.name for column in r.columns]
    rows = [dict(zip(names, row, strict=True)) for row in await db.read(query)]
    out: list[dict[str, Any]] = []
    for row in rows:
        last = up_to is not None and row["run_id"] == up_to[0]
        out.append(_forked_row(row, new_session_id, len(out), up_to[1] if last and up_to is not None else None))
        if last:
            break
    return out


def _forked_row(row: dict[str, Any], new_session_id: str, run_index: int, up_to: int | None) -> dict[str, Any]:
    data = copy.deepcopy(as_dict(row["run_data"]))
    run_id = str(uuid4())
    messages = [m for m in data.get("messages") or [] if isinstance(m, dict)]
    if up_to is not None:
        messages = messages[: up_to + 1]
        data["content"] = messages[-1].get("content") if messages else None
    for message in messages:
        message["id"] = str(uuid4())
    status = str(row["status"] or data.get("status") or "COMPLETED").upper()
    # A question the source still waits on is not the fork's: its copy is an ended run.
    if status in ("PAUSED", "RUNNING", "PENDING"):
        status = "CANCELLED"
    data.update(run_id=run_id, session_id=new_session_id, messages=messages, status=status)
    data.pop("requirements", None)
    data["metadata"] = {k: v for k, v in metadata_of(data).items() if k not in _NOT_FORKED}
    return {
        **row,
        "run_id": run_id,
        "session_id": new_session_id,
        "run_index": run_index,
        "status": status,
        "run_data": data,
        "parent_run_id": None,
    }


async def keep_in_history(db: Database, run_id: str) -> None:
    """Keep an interrupted (cancelled) run in the history Agno gives the model: its row stays CANCELLED, which is
    what we tell, while the run data Agno reads says COMPLETED, a turn cut short but said."""
    r = db.runs
    async with db.engine.begin() as conn:
        row = (
            await conn.execute(select(r.c.status, r.c.run_data).where(r.c.run_id == run_id).with_for_update())
        ).first()
        if row is None or str(row[0] or "").upper() != "CANCELLED":
            return
        data = dict(as_dict(row[1]))
        data["status"] = "COMPLETED"
        data["metadata"] = {**metadata_of(data), INTERRUPTED_KEY: True}
        await conn.execute(update(r).where(r.c.run_id == run_id).values(run_data=data))


async def keep_partial_answer(db: Database, run_id: str, content: str) -> bool:
    """Give a stopped run its answer so far as its last message, when Agno left it out: Agno keeps the partial
    text as an assistant message only when the run's messages hold no assistant message yet, so in a conversation
    with an earlier exchange (whose answer is among the messages, copied in as history) it keeps none. False when the
    run already ends with an answer of its own."""
    r = db.runs
    async with db.engine.begin() as conn:
        row = (await conn.execute(select(r.c.run_data).where(r.c.run_id == run_id).with_for_update())).first()
        if row is None:
            return False
        data = dict(as_dict(row[0]))
        messages = [m for m in data.get("messages") or [] if isinstance(m, dict)]
        own = [m for m in messages if not m.get("from_history")]
        if own and own[-1].get("role") == "assistant" and own[-1].get("content"):
            return False
        created_at = int(data.get("created_at") or 0) or None
        answer = {"id": str(uuid4()), "role": "assistant", "content": content, "created_at": created_at}
        data["messages"] = [*messages, answer]
        await conn.execute(update(r).where(r.c.run_id == run_id).values(run_data=data))
    return True


INTERRUPTED_KEY = "agno_graphql_interrupted"

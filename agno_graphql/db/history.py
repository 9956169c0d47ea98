"""A session's history: its runs and the conversation's messages, by cursor pages.

Agno stores each run as one row holding the run's messages. A message's place
in the conversation is (run_index, position in that run's list), which never
changes, so it makes a stable cursor. A page of messages reads only as many
runs as it needs, walking from the cursor in batches.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Integer, Select, String, bindparam, func, select, text, update

from agno_graphql.compat.agno_parts import AGNO_MEDIA_HANDOFF_TEXT
from agno_graphql.db.attachments import MEDIA_LISTS, attachments_of, is_inline
from agno_graphql.db.database import Database
from agno_graphql.db.pagination import Page, PageRequest, beyond, encode_cursor, finish_page
from agno_graphql.records import (
    MessageRecord,
    RunRecord,
    ToolCallRecord,
    metrics_data,
    parse_arguments,
    requirement_of,
)

RUN_CURSOR = "run"
MESSAGE_CURSOR = "message"
DEFAULT_ROLES = ("user", "assistant", "tool")


def as_dict(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    if isinstance(value, str | bytes):
        try:
            loaded = json.loads(value)
        except ValueError:
            return {}
        return loaded if isinstance(loaded, dict) else {}
    return {}


def _as_text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, default=str)


def tool_calls_of(message: dict[str, Any]) -> list[ToolCallRecord]:
    calls = []
    for call in message.get("tool_calls") or []:
        if not isinstance(call, dict):
            continue
        raw_function = call.get("function")
        function: dict[str, Any] = raw_function if isinstance(raw_function, dict) else {}
        calls.append(
            ToolCallRecord(
                id=str(call.get("id") or ""),
                name=str(function.get("name") or call.get("name") or ""),
                arguments=parse_arguments(function.get("arguments", call.get("arguments"))),
            )
        )
    return calls


def run_record(row: Sequence[Any]) -> RunRecord:
    run_id, session_id, agent_id, run_index, status, run_data, created_at = row
    data = as_dict(run_data)
    stored_status = str(status or data.get("status") or "COMPLETED").upper()
    metadata = metadata_of(data)
    replaced = stored_status == REPLACED_STATUS
    return RunRecord(
        id=run_id,
        session_id=session_id,
        agent_id=agent_id or data.get("agent_id") or "",
        run_index=int(run_index or 0),
        status=str(metadata.get(STATUS_BEFORE_KEY) or "COMPLETED") if replaced else stored_status,
        input=_as_text(_input_text(data.get("input"))),
        content=_as_text(data.get("content")),
        created_at=int(created_at or data.get("created_at") or 0),
        metrics=metrics_data(data.get("metrics")),
        failure=_failure_of(data),
        **_pause_of(str(status or data.get("status") or "").upper(), data),
        replaced=replaced,
        answers_to=str(metadata.get(ANSWERS_TO_KEY) or run_id),
    )


def _input_text(run_input: Any) -> Any:
    """The user's message of a run: Agno keeps the input as given, a text or (a regeneration's) a list of messages
    whose last user message is the user's."""
    value = run_input.get("input_content") if isinstance(run_input, dict) else run_input
    if isinstance(value, list):
        said = [m.get("content") for m in value if isinstance(m, dict) and m.get("role") == "user"]
        return said[-1] if said else None
    return value


# Agno's own status for a run a regeneration replaced: Agno leaves such runs out of the history it gives the model.
# The status the run had before is kept in its metadata, and is the one we tell.
REPLACED_STATUS = "REGENERATED"
STATUS_BEFORE_KEY = "agno_graphql_status_before"
# A run waiting in line (`ifBusy: ENQUEUE`) has no place in the conversation until it starts.
QUEUED_STATUS = "PENDING"
OUT_OF_CONVERSATION = (REPLACED_STATUS, QUEUED_STATUS)
ANSWERS_TO_KEY = "agno_graphql_answers_to"


FAILURE_KEY = "agno_graphql_failure"
# Where a paused run's event numbering stands: its continuation goes on from there, also after a restart.
NEXT_INDEX_KEY = "agno_graphql_next_index"
# Why a paused run was cancelled (Agno's own cancel, which records a reason, refuses paused runs).
CANCEL_REASON_KEY = "agno_graphql_cancel_reason"


def metadata_of(data: dict[str, Any]) -> dict[str, Any]:
    metadata = data.get("metadata")
    return metadata if isinstance(metadata, dict) else {}


def _pause_of(status: str, data: dict[str, Any]) -> dict[str, Any]:
    """A paused run's open requirements and next index; the index also while it is being continued (nothing for
    a run that is neither)."""
    if status not in ("PAUSED", "RUNNING"):
        return {}
    next_index = metadata_of(data).get(NEXT_INDEX_KEY)
    pause: dict[str, Any] = {"next_index": next_index if isinstance(next_index, int) else None}
    if status == "PAUSED":
        pause["requirements"] = tuple(r for r in map(requirement_of, data.get("requirements") or []) if r is not None)
    return pause


def _failure_of(data: dict[str, Any]) -> tuple[str, str] | None:
    failure = metadata_of(data).get(FAILURE_KEY)
    if not isinstance(failure, dict) or not isinstance(failure.get("code"), str):
        return None
    return failure["code"], str(failure.get("message") or "")


def messages_of_run(
    run_id: str, run_index: int, run_data: Any, roles: Iterable[str], created_at: int
) -> list[MessageRecord]:
    """The run's own messages, in order: those Agno copied in as history are left out."""
    wanted = set(roles)
    data = as_dict(run_data)
    messages = data.get("messages") or []
    session_id = str(data.get("session_id") or "")
    records: list[MessageRecord] = []
    seen: set[str] = set()
    for position, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("from_history") or _is_media_handoff(message):
            continue
        role = str(message.get("role") or "")
        message_id = str(message.get("id") or f"{run_id}:{position}")
        if role not in wanted or message_id in seen:
            continue
        seen.add(message_id)
        records.append(
            MessageRecord(
                id=message_id,
                run_id=run_id,
                run_index=run_index,
                position=position,
                role=role,
                content=_as_text(message.get("content")),
                tool_calls=tool_calls_of(message),
                tool_call_id=message.get("tool_call_id"),
                tool_name=message.get("tool_name"),
                created_at=int(message.get("created_at") or created_at),
                tool_call_error=bool(message.get("tool_call_error")),
                attachments=attachments_of(message, session_id),
            )
        )
    made = attachments_of(data, session_id)  # the run's output media: tools' and the model's
    last_answer = next((i for i in range(len(records) - 1, -1, -1) if records[i].role == "assistant"), None)
    if made and last_answer is not None:
        answer = records[last_answer]
        records[last_answer] = dataclasses.replace(answer, attachments=answer.attachments + made)
    return records


def _is_media_handoff(message: dict[str, Any]) -> bool:
    return message.get("role") == "user" and message.get("content") == AGNO_MEDIA_HANDOFF_TEXT


def run_columns(db: Database) -> list[Any]:
    r = db.runs
    return [r.c.run_id, r.c.session_id, r.c.agent_id, r.c.run_index, r.c.status, r.c.run_data, r.c.created_at]


def not_queued(db: Database) -> Any:
    """The runs that have started (a run waiting in line has no place in the session's lists yet)."""
    return func.coalesce(db.runs.c.status, "") != QUEUED_STATUS


def in_conversation(db: Database) -> Any:
    """The runs in the conversation: not replaced by a regeneration or an edit, nor waiting in line to start."""
    return func.coalesce(db.runs.c.status, "").notin_(OUT_OF_CONVERSATION)


async def list_runs(
    db: Database, session_id: str, request: PageRequest, include_replaced: bool = False
) -> Page[RunRecord]:
    await db.ensure_ready()
    r = db.runs
    filters = [r.c.session_id == session_id, in_conversation(db) if not include_replaced else not_queued(db)]
    if request.after is not None:
        filters.append(beyond([r.c.run_index], request.after, descending=False))
    if request.before is not None:
        filters.append(beyond([r.c.run_index], request.before, descending=True))
    order = r.c.run_index.desc() if request.backward else r.c.run_index.asc()
    query = select(*run_columns(db)).where(*filters).order_by(order).limit(request.size + 1)
    rows = [run_record(row) for row in await db.read(query)]

    async def count_total() -> int:
        counts = await run_counts(db, [session_id], include_replaced)
        return counts.get(session_id, 0)

    return finish_page(rows, request, lambda run: encode_cursor(RUN_CURSOR, [run.run_index]), count_total)


async def run_counts(db: Database, session_ids: Sequence[str], include_replaced: bool = False) -> dict[str, int]:
    """The runs of each session in the conversation (with `include_replaced`, all of them)."""
    await db.ensure_ready()
    r = db.runs
    filters = [r.c.session_id.in_(session_ids), not_queued(db) if include_replaced else in_conversation(db)]
    query = select(r.c.session_id, func.count()).where(*filters).group_by(r.c.session_id)
    return {session_id: int(count) for session_id, count in await db.read(query)}


async def first_inputs(db: Database, session_ids: Sequence[str]) -> dict[str, str | None]:
    """The first user message of each session's conversation, read from that run only (an edit of the first
    message replaces the first run, and the title follows)."""
    await db.ensure_ready()
    r = db.runs
    first = (
        select(r.c.session_id, func.min(r.c.run_index).label("first_index"))
        .where(r.c.session_id.in_(session_ids), in_conversation(db))
        .group_by(r.c.session_id)
        .subquery()
    )
    query = select(r.c.session_id, r.c.run_data[("input",)]).join(
        first, (r.c.session_id == first.c.session_id) & (r.c.run_index == first.c.first_index)
    )
    return {session_id: _as_text(_input_text(_as_json(raw))) for session_id, raw in await db.read(query)}


def _as_json(value: Any) -> Any:
    if isinstance(value, str | bytes):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


@dataclass(frozen=True)
class _BatchShape:
    after: bool
    before: bool
    bounded: bool
    backward: bool


def _batch_statement(db: Database, shape: _BatchShape) -> Select[Any]:
    """A batch of runs for a page of messages, built once per shape with every value bound (building a Core
    statement costs more CPU than the database spends on it)."""
    cache: dict[_BatchShape, Select[Any]] = db.statement_cache.setdefault("history.batch", {})
    statement = cache.get(shape)
    if statement is not None:
        return statement
    r = db.runs
    filters = [r.c.session_id == bindparam("session_id", type_=String()), in_conversation(db)]
    if shape.after:
        filters.append(r.c.run_index >= bindparam("after_run", type_=Integer()))
    if shape.before:
        filters.append(r.c.run_index <= bindparam("before_run", type_=Integer()))
    if shape.bounded:
        bound = bindparam("run_bound", type_=Integer())
        filters.append(r.c.run_index < bound if shape.backward else r.c.run_index > bound)
    order = r.c.run_index.desc() if shape.backward else r.c.run_index.asc()
    columns: Select[Any] = select(r.c.run_id, r.c.run_index, r.c.run_data, r.c.created_at)
    statement = columns.where(*filters).order_by(order).limit(bindparam("batch"))
    cache[shape] = statement
    return statement


async def list_messages(
    db: Database, session_id: str, request: PageRequest, roles: Sequence[str] = DEFAULT_ROLES
) -> Page[MessageRecord]:
    """One page of the conversation, reading runs in batches from the cursor outwards.

    The first batch counts on a few messages a run (a turn with a tool call has four); each next batch is sized by
    the messages a run has held so far, so a page reads about the runs it shows whatever the conversation's
    length, and messages are made only until the page is full."""
    await db.ensure_ready()
    wanted = request.size + 1
    batch = first_batch(wanted)
    runs_read = 0
    collected: list[MessageRecord] = []
    run_bound: int | None = None
    backward = request.backward
    params: dict[str, Any] = {"session_id": session_id}
    if request.after is not None:
        params["after_run"] = request.after[0]
    if request.before is not None:
        params["before_run"] = request.before[0]
    while len(collected) < wanted:
        shape = _BatchShape(request.after is not None, request.before is not None, run_bound is not None, backward)
        params.update(run_bound=run_bound, batch=batch)
        rows = await db.read(_batch_statement(db, shape), params)
        for run_id, run_index, run_data, created_at in rows:
            messages = messages_of_run(run_id, int(run_index or 0), run_data, roles, int(created_at or 0))
            messages = [m for m in messages if _within(m, request)]
            collected.extend(reversed(messages) if backward else messages)
            runs_read += 1
            if len(collected) >= wanted:
                break  # the runs after it in this batch lie beyond the page
        if len(rows) < batch or len(collected) >= wanted:
            break
        run_bound = int(rows[-1][1] or 0)
        batch = next_batch(wanted - len(collected), len(collected), runs_read, batch)

    async def count_total() -> int:
        return await count_messages(db, session_id, roles)

    def cursor_of(message: MessageRecord) -> str:
        return encode_cursor(MESSAGE_CURSOR, [message.run_index, message.position])

    return finish_page(collected, request, cursor_of, count_total)


_MESSAGES_PER_RUN_GUESS = 4
_MAX_BATCH = 200


def first_batch(wanted: int) -> int:
    return max(2, -(-wanted // _MESSAGES_PER_RUN_GUESS) + 1)


def next_batch(missing: int, messages_seen: int, runs_read: int, previous: int) -> int:
    """Runs to read for `missing` more messages at the density seen, one spare; twice the last batch while no run
    has held a message to show (a filter by role that matches little)."""
    if messages_seen == 0:
        return min(_MAX_BATCH, previous * 2)
    per_run = max(1.0, messages_seen / runs_read)
    return min(_MAX_BATCH, max(2, int(missing / per_run) + 2))


def _within(message: MessageRecord, request: PageRequest) -> bool:
    key = (message.run_index, message.position)
    if request.after is not None and key <= tuple(request.after):
        return False
    return not (request.before is not None and key >= tuple(request.before))


async def count_messages(db: Database, session_id: str, roles: Sequence[str] = DEFAULT_ROLES) -> int:
    """Count in the database, so no run is shipped to us just to be counted."""
    await db.ensure_ready()
    table = db.runs.name
    role_list = ", ".join(f":role{i}" for i in range(len(roles)))
    params: dict[str, Any] = {"session_id": session_id, **{f"role{i}": role for i, role in enumerate(roles)}}
    params["handoff"] = AGNO_MEDIA_HANDOFF_TEXT
    if not roles:
        return 0
    if db.dialect == "sqlite":
        sql = (
            f"SELECT COUNT(*) FROM {table} r, json_each(r.run_data, '$.messages') m "
            f"WHERE r.session_id = :session_id AND json_extract(m.value, '$.role') IN ({role_list}) "
            f"AND COALESCE(r.status, '') NOT IN ('{REPLACED_STATUS}', '{QUEUED_STATUS}') "
            "AND COALESCE(json_extract(m.value, '$.from_history'), 0) = 0 "
            "AND NOT (json_extract(m.value, '$.role') = 'user' "
            "AND COALESCE(json_extract(m.value, '$.content'), '') = :handoff)"
        )
    else:
        sql = (
            f"SELECT COUNT(*) FROM `{table}` r, JSON_TABLE(r.run_data, '$.messages[*]' COLUMNS("
            "role VARCHAR(32) PATH '$.role', from_history VARCHAR(8) PATH '$.from_history', "
            "content VARCHAR(64) PATH '$.content')) m "
            f"WHERE r.session_id = :session_id AND m.role IN ({role_list}) "
            f"AND COALESCE(r.status, '') NOT IN ('{REPLACED_STATUS}', '{QUEUED_STATUS}') "
            "AND (m.from_history IS NULL OR m.from_history IN ('false', '0')) "
            "AND NOT (m.role = 'user' AND COALESCE(m.content, '') = :handoff)"
        )
    return int((await db.read(text(sql), params))[0][0])


async def get_run(db: Database, run_id: str) -> tuple[RunRecord, list[MessageRecord]] | None:
    """A stored run with its own messages (every role), by id."""
    await db.ensure_ready()
    r = db.runs
    query = select(*run_columns(db)).where(r.c.run_id == run_id)
    rows = await db.read(query)
    row = rows[0] if rows else None
    if row is None or row[0] != run_id:
        return None
    run = run_record(row)
    return run, messages_of_run(run.id, run.run_index, row[5], DEFAULT_ROLES, run.created_at)


async def record_failure(db: Database, run_id: str, code: str, message: str) -> None:
    """Mark a stored run failed with the code and message its followers saw, so a replay tells the same."""
    await _update_run_data(db, run_id, status="ERROR", metadata={FAILURE_KEY: {"code": code, "message": message}})


async def drop_unstored_media(db: Database, run_id: str) -> int:
    """Take out of a stored run the media Agno kept inline because its media storage failed (bytes in the row:
    a 20 MiB image would be a row of about 27 MB); how many there were. References stay."""
    r = db.runs
    async with db.engine.begin() as conn:
        row = (await conn.execute(select(r.c.run_data).where(r.c.run_id == run_id).with_for_update())).first()
        if row is None:
            return 0
        data = dict(as_dict(row[0]))
        dropped = _drop_inline(data)
        for index, message in enumerate(data.get("messages") or ()):
            if isinstance(message, dict):
                kept = dict(message)
                if count := _drop_inline(kept):
                    data["messages"][index] = kept
                    dropped += count
        if dropped:
            await conn.execute(update(r).where(r.c.run_id == run_id).values(run_data=data))
    return dropped


def _drop_inline(holder: dict[str, Any]) -> int:
    dropped = 0
    for key in MEDIA_LISTS:
        items = holder.get(key)
        if not isinstance(items, list):
            continue
        kept = [item for item in items if not is_inline(item)]
        dropped += len(items) - len(kept)
        holder[key] = kept or None
    return dropped


async def record_pause(db: Database, run_id: str, next_index: int) -> None:
    """Keep where a paused run's event numbering stands, for its continuation."""
    await _update_run_data(db, run_id, metadata={NEXT_INDEX_KEY: next_index})


async def _update_run_data(
    db: Database, run_id: str, *, metadata: dict[str, Any], status: str | None = None, only_if: str | None = None
) -> bool:
    """Merge `metadata` into a stored run's metadata (and set its status), in one transaction; with `only_if`, only
    while the run has that status, decided by one conditional UPDATE (so two callers cannot both win). False when
    the run is missing or its status was another."""
    r = db.runs
    async with db.engine.begin() as conn:
        if only_if is not None:
            claimed = await conn.execute(
                update(r).where(r.c.run_id == run_id, r.c.status == only_if).values(status=status or only_if)
            )
            if claimed.rowcount != 1:
                return False
        row = (await conn.execute(select(r.c.run_data).where(r.c.run_id == run_id).with_for_update())).first()
        if row is None:
            return False
        data = dict(as_dict(row[0]))
        data["metadata"] = {**metadata_of(data), **metadata}
        values: dict[str, Any] = {"run_data": data}
        if status is not None:
            data["status"] = status
            values["status"] = status
        await conn.execute(update(r).where(r.c.run_id == run_id).values(**values))
    return True


async def claim_paused(db: Database, run_id: str) -> bool:
    """Take a paused run for its continuation: from now on it is RUNNING, so nobody continues it again (nor
    after a crash: a run left RUNNING with nobody driving it is reported lost). False if it is not paused."""
    return await _update_run_data(db, run_id, status="RUNNING", only_if="PAUSED", metadata={})


async def cancel_paused(db: Database, run_id: str, reason: str) -> bool:
    """Store a paused run CANCELLED (Agno's own cancel refuses paused runs). False if it is not paused."""
    return await _update_run_data(
        db, run_id, status="CANCELLED", only_if="PAUSED", metadata={CANCEL_REASON_KEY: reason}
    )


async def stored_requirements(db: Database, run_id: str) -> list[dict[str, Any]]:
    """A paused run's requirements as Agno stored them (to hand back to Agno, answered)."""
    await db.ensure_ready()
    rows = await db.read(select(db.runs.c.run_data).where(db.runs.c.run_id == run_id))
    raw = as_dict(rows[0][0]).get("requirements") if rows else None
    return [item for item in raw if isinstance(item, dict)] if isinstance(raw, list) else []


async def paused_runs(db: Database, session_ids: Sequence[str]) -> dict[str, RunRecord]:
    """The paused run of each session that has one (the newest, should there be several)."""
    if not session_ids:
        return {}
    await db.ensure_ready()
    r = db.runs
    query = (
        select(*run_columns(db))
        .where(r.c.session_id.in_(session_ids), r.c.status == "PAUSED")
        .order_by(r.c.run_index.asc())
    )
    return {run.session_id: run for run in map(run_record, await db.read(query))}

"""Our table of attachments: who uploaded each file, the session it was first sent in, what it is and where its
bytes are (Agno's media storage). Runs keep only Agno's references to them, never the bytes."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from sqlalchemy import BigInteger, Column, Double, Index, Integer, MetaData, String, Table, delete, func, select, update

from agno_graphql.records import POSITION_KEY, AttachmentRecord

if TYPE_CHECKING:
    from agno_graphql.db.database import Database

TABLE_NAME = "agno_graphql_attachments"

_COLUMNS = (
    "id",
    "user_id",
    "session_id",
    "name",
    "mime_type",
    "kind",
    "byte_size",
    "created_at",
    "storage_key",
    "content_hash",
    "width",
    "height",
    "first_line",
)


def attachments_table(metadata: MetaData) -> Table:
    return Table(
        TABLE_NAME,
        metadata,
        Column("id", String(64), primary_key=True),
        Column("user_id", String(255), nullable=False),
        Column("session_id", String(255), nullable=True),
        Column("name", String(255), nullable=False),
        Column("mime_type", String(100), nullable=False),
        Column("kind", String(16), nullable=False),
        Column("byte_size", BigInteger, nullable=False),
        Column("created_at", Double, nullable=False),
        Column("storage_key", String(512), nullable=False),
        Column("content_hash", String(64), nullable=False),
        Column("width", Integer, nullable=True),
        Column("height", Integer, nullable=True),
        Column("first_line", String(255), nullable=True),
        Index(f"{TABLE_NAME}_session", "session_id"),
        Index(f"{TABLE_NAME}_unsent", "session_id", "created_at"),
    )


def _record(row: Any) -> AttachmentRecord:
    values = dict(zip(_COLUMNS, row, strict=True))
    values["byte_size"] = int(values["byte_size"])
    values["created_at"] = float(values["created_at"])
    return AttachmentRecord(**values)


def _columns(db: Database) -> list[Any]:
    return [db.attachments.c[name] for name in _COLUMNS]


async def insert(db: Database, record: AttachmentRecord) -> None:
    await db.ensure_ready()
    values = {name: getattr(record, name) for name in _COLUMNS}
    async with db.engine.begin() as conn:
        await conn.execute(db.attachments.insert().values(**values))


async def get(db: Database, attachment_id: str) -> AttachmentRecord | None:
    found = await get_many(db, [attachment_id])
    return found.get(attachment_id)


async def get_many(db: Database, ids: Sequence[str]) -> dict[str, AttachmentRecord]:
    if not ids:
        return {}
    await db.ensure_ready()
    rows = await db.read(select(*_columns(db)).where(db.attachments.c.id.in_(list(ids))))
    return {str(row[0]): _record(row) for row in rows}


async def bind_to_session(db: Database, ids: Sequence[str], user_id: str, session_id: str) -> None:
    """Mark the user's unsent attachments as sent in this session (the first session an attachment is sent in is
    the one it belongs to; the caller checked that none belongs to another)."""
    a = db.attachments
    async with db.engine.begin() as conn:
        await conn.execute(
            update(a)
            .where(a.c.id.in_(list(ids)), a.c.user_id == user_id, a.c.session_id.is_(None))
            .values(session_id=session_id)
        )


async def of_session(db: Database, session_id: str) -> list[AttachmentRecord]:
    await db.ensure_ready()
    rows = await db.read(select(*_columns(db)).where(db.attachments.c.session_id == session_id))
    return [_record(row) for row in rows]


async def unsent_before(db: Database, before: float, limit: int = 500) -> list[AttachmentRecord]:
    await db.ensure_ready()
    a = db.attachments
    query = select(*_columns(db)).where(a.c.session_id.is_(None), a.c.created_at < before).limit(limit)
    return [_record(row) for row in await db.read(query)]


async def remove(db: Database, ids: Sequence[str]) -> None:
    if not ids:
        return
    async with db.engine.begin() as conn:
        await conn.execute(delete(db.attachments).where(db.attachments.c.id.in_(list(ids))))


async def remove_unsent(db: Database, ids: Sequence[str]) -> list[str]:
    """Remove those of the attachments that are still unsent (a run may have just sent one); the ids removed."""
    a = db.attachments
    async with db.engine.begin() as conn:
        await conn.execute(delete(a).where(a.c.id.in_(list(ids)), a.c.session_id.is_(None)))
        left = {str(row[0]) for row in (await conn.execute(select(a.c.id).where(a.c.id.in_(list(ids))))).all()}
    return [i for i in ids if i not in left]


# A stored message's media lists (Agno's `Message`), and the kind of what each holds.
MEDIA_LISTS = {"images": "IMAGE", "audio": "AUDIO", "videos": "VIDEO", "files": "DOCUMENT"}


def attachments_of(message: Mapping[str, Any], session_id: str) -> tuple[AttachmentRecord, ...]:
    """The attachments a stored message holds, from the references Agno keeps in it (never the bytes), in the order
    the message sent them (Agno keeps a list per kind; made media in the order made). Media held inline, with no
    reference into the storage, has no link to give and is left out."""
    found: list[tuple[int, AttachmentRecord]] = []
    for key, kind in MEDIA_LISTS.items():
        for item in message.get(key) or ():
            record = _stored_record(item, kind, session_id, message)
            if record is not None:
                position = (item.get("metadata") or {}).get(POSITION_KEY)
                found.append((position if isinstance(position, int) else len(found), record))
    return tuple(record for _, record in sorted(found, key=lambda pair: pair[0]))


def _stored_record(item: Any, kind: str, session_id: str, message: Mapping[str, Any]) -> AttachmentRecord | None:
    ref = item.get("media_reference") if isinstance(item, dict) else None
    if not isinstance(ref, dict) or not ref.get("storage_key"):
        return None
    facts = item.get("metadata") or ref.get("metadata") or {}
    return AttachmentRecord(
        id=str(facts.get("attachment_id") or ref.get("media_id") or item.get("id")),
        user_id="",  # the viewer's: messages are read in their own sessions only
        session_id=session_id,
        name=str(facts.get("name") or ref.get("filename") or item.get("filename") or ref["storage_key"]),
        mime_type=str(ref.get("mime_type") or item.get("mime_type") or "application/octet-stream"),
        kind=str(facts.get("kind") or kind),
        byte_size=int(facts.get("byte_size") or ref.get("size") or 0),
        created_at=float(facts.get("created_at") or message.get("created_at") or 0),
        storage_key=str(ref["storage_key"]),
        content_hash=str(ref.get("content_hash") or ""),
        width=_int_or_none(facts.get("width")),
        height=_int_or_none(facts.get("height")),
        first_line=facts.get("first_line"),
    )


def _int_or_none(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) else None


async def output_media(db: Database, run_id: str) -> tuple[str, dict[str, Any]] | None:
    """A stored run's output media lists (what its tools and model made) by kind, with its session; None when it made
    none. Only those lists, not the whole run: this is read as every run ends."""
    await db.ensure_ready()
    r = db.runs
    lists = [func.json_extract(r.c.run_data, f"$.{key}") for key in MEDIA_LISTS]
    rows = await db.read(select(r.c.session_id, *lists).where(r.c.run_id == run_id))
    if not rows or not any(rows[0][1:]):
        return None
    session_id, *values = rows[0]
    return str(session_id), {key: json.loads(value) for key, value in zip(MEDIA_LISTS, values, strict=True) if value}


def is_inline(item: Any) -> bool:
    """A medium Agno holds with its bytes in the run rather than a reference into the storage (its offload failed)."""
    return isinstance(item, dict) and bool(item.get("content")) and not item.get("media_reference")


def holds_inline(media: Mapping[str, Any]) -> bool:
    return any(is_inline(item) for items in media.values() if isinstance(items, list) for item in items)


async def store_made(db: Database, user_id: str, media: tuple[str, dict[str, Any]]) -> int:
    """Record the media a run made (`output_media`: a tool's image, the model's audio, which Agno offloaded to the
    storage as the run was stored) as the user's attachments in the run's session, so their links work; how many
    were new. Media held inline has no link and is left out."""
    session_id, data = media
    made = attachments_of(data, session_id)
    known = await get_many(db, [a.id for a in made])
    new = [replace(a, user_id=user_id) for a in made if a.id not in known]
    for record in new:
        await insert(db, record)
    return len(new)

"""The run broker for several server instances sharing one Redis.

- A run's events go to a Redis Stream, `<prefix>:run:<id>:events`, one entry per event with the id
  `<index + 1>-0`, so a follower on any instance resumes after an index with one XRANGE. The stream is
  capped (MAXLEN) and expires a retention period after the run ends. Followers on the instance that
  drives the run read its in-memory log instead, so a busy instance does not poll Redis per event.
  Followers on other instances hold no connection while they wait: one blocking XREAD per instance
  watches every stream they wait on (`StreamWatcher`) and wakes them.
- The session lock (`<prefix>:session:<id>:run`) and the user's slots (a sorted set scored by expiry)
  are taken in one Lua script, so two instances can never both start a run in one session. The driving
  instance renews the lease while the run goes; if it dies, the lease lapses and the session is free.
- Cancellation is a message on `<prefix>:cancel`; the instance that drives the run cancels it through
  Agno in-process (Agno checks its in-process registry between deltas, with no Redis call per delta).
- Session changes are published on `<prefix>:changes:<user id>` and fanned out to local subscribers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import asdict
from typing import Any
from uuid import uuid4

from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import RedisError

from agno_graphql.agents.broker import (
    ENDING,
    GOING,
    LOST,
    BrokerLimits,
    CancelHandler,
    ChangeFanout,
    LocalLogs,
    RunInfo,
    SessionChange,
)
from agno_graphql.agents.events import RUN_LOST, decode_event, encode_event
from agno_graphql.errors import EventsExpired, RateLimited, SessionBusy
from agno_graphql.records import TERMINAL, Event, Failed, Paused

log = logging.getLogger(__name__)

# KEYS: session lock, user's runs; ARGV: run id, now ms, lease ms, max runs per user.
_ADMIT = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 'BUSY' end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[2])
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[4]) then return 'LIMIT' end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
redis.call('ZADD', KEYS[2], tonumber(ARGV[2]) + tonumber(ARGV[3]), ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return 'OK'
"""

# KEYS: session lock, user's runs; ARGV: run id, now ms, lease ms. Only while the run holds the session:
# a late renewal must not put a released run back among the user's slots.
_RENEW = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('ZADD', KEYS[2], tonumber(ARGV[2]) + tonumber(ARGV[3]), ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return 1
"""

# KEYS: session lock, user's runs, run info; ARGV: run id. The run is marked finished in the same step as its
# session is freed: a follower elsewhere that found the session free while the run was not yet marked finished
# took it for lost (RUN_LOST) although its end was on the way.
_RELEASE = """
if redis.call('EXISTS', KEYS[3]) == 1 then redis.call('HSET', KEYS[3], 'finished', 'true') end
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
"""

# KEYS: pending name; ARGV: run id.
_TAKE_NAME = """
local value = redis.call('GET', KEYS[1])
if not value then return false end
local pending = cjson.decode(value)
if pending['run_id'] ~= ARGV[1] then return false end
redis.call('DEL', KEYS[1])
return pending['name']
"""

FOLLOW_BATCH = 500
MAX_CONNECTIONS = 100
POOL_WAIT_SECONDS = 10.0
# How long a follower waits for new events before it looks whether the run is still going.
FOLLOW_WAIT_SECONDS = 2.0
# A run released by its instance writes its terminal event next; wait this long for it before calling it lost.
TERMINAL_GRACE_SECONDS = 30.0
WATCH_BLOCK_MS = 1000


def _entry_id(index: int) -> str:
    return f"{index + 1}-0"


def _id_key(entry_id: bytes | str) -> tuple[int, int]:
    raw = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    major, _, minor = raw.partition("-")
    return int(major), int(minor or 0)


class StreamWatcher:
    """One blocking XREAD per instance over every run stream its followers wait on.

    A follower reads with XRANGE (a pooled connection, briefly) and, when it is at the end, waits here to be
    woken when its stream grows. Hundreds of followers then hold no Redis connection each, and the
    instance's one watching connection is interrupted (CLIENT UNBLOCK) when a new stream is to be watched.
    """

    def __init__(self, url: str, commands: Any) -> None:
        self._redis: Any = Redis.from_url(url, decode_responses=False, max_connections=1)
        self._commands = commands
        self._waiting: dict[str, list[tuple[tuple[int, int], asyncio.Future[None]]]] = {}
        self._task: asyncio.Task[None] | None = None
        self._client_id: int | None = None
        self._watching: set[str] = set()

    async def wait(self, key: str, after_id: str, timeout: float) -> None:
        """Until the stream `key` has an entry after `after_id`, or `timeout` seconds have passed."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (_id_key(after_id), waiter)
        self._waiting.setdefault(key, []).append(entry)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._watch())
        elif key not in self._watching:
            await self._interrupt()
        try:
            await asyncio.wait_for(asyncio.shield(waiter), timeout=timeout)
        except TimeoutError:
            pass
        finally:
            entries = self._waiting.get(key)
            if entries is not None:
                with contextlib.suppress(ValueError):
                    entries.remove(entry)
                if not entries:
                    del self._waiting[key]

    async def _interrupt(self) -> None:
        if self._client_id is not None:
            with contextlib.suppress(RedisError, OSError):
                await self._commands.execute_command("CLIENT", "UNBLOCK", self._client_id)

    async def _watch(self) -> None:
        while self._waiting:
            streams = {
                key: "{}-{}".format(*min(position for position, _ in entries)) for key, entries in self._waiting.items()
            }
            try:
                if self._client_id is None:
                    self._client_id = int(await self._redis.client_id())
                self._watching = set(streams)
                reply = await self._redis.xread(streams, count=1, block=WATCH_BLOCK_MS)
            except (RedisError, OSError):
                self._client_id = None
                self._watching = set()
                log.warning("watching run streams failed; trying again", exc_info=True)
                await asyncio.sleep(0.5)
                continue
            for raw_key, entries in reply or []:
                key = raw_key.decode() if isinstance(raw_key, bytes) else raw_key
                newest = _id_key(entries[-1][0])
                still = []
                for position, waiter in self._waiting.get(key, []):
                    if position >= newest:
                        still.append((position, waiter))
                    elif not waiter.done():
                        waiter.set_result(None)
                if still:
                    self._waiting[key] = still
                else:
                    self._waiting.pop(key, None)
        self._watching = set()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        await self._redis.aclose()


class RedisBroker:
    leases_lapse = True

    def __init__(self, url: str, limits: BrokerLimits | None = None, prefix: str = "agql") -> None:
        self.limits = limits or BrokerLimits()
        self.prefix = prefix
        self.instance_id = str(uuid4())
        self._heartbeat: asyncio.Task[None] | None = None
        # Typed loosely: redis-py's stubs cannot tell bytes replies (decode_responses=False) from str ones.
        # Commands wait for a free connection rather than fail when all are in use; followers hold none.
        pool = BlockingConnectionPool.from_url(url, max_connections=MAX_CONNECTIONS, timeout=POOL_WAIT_SECONDS)
        self.redis: Any = Redis(connection_pool=pool, decode_responses=False)
        self._watcher = StreamWatcher(url, self.redis)
        self._local = LocalLogs(self.limits)
        self._pending: dict[str, list[Event]] = {}
        self._writers: dict[str, asyncio.Task[None]] = {}
        self._fanout = ChangeFanout()
        self._on_cancel: CancelHandler | None = None
        self._listener: asyncio.Task[None] | None = None
        self._subscribed = False
        self._admit = self.redis.register_script(_ADMIT)
        self._renew = self.redis.register_script(_RENEW)
        self._release = self.redis.register_script(_RELEASE)
        self._take_name = self.redis.register_script(_TAKE_NAME)

    # keys
    def _lock_key(self, session_id: str) -> str:
        return f"{self.prefix}:session:{session_id}:run"

    def _name_key(self, session_id: str) -> str:
        return f"{self.prefix}:session:{session_id}:pending-name"

    def _user_key(self, user_id: str) -> str:
        return f"{self.prefix}:user:{user_id}:runs"

    def _info_key(self, run_id: str) -> str:
        return f"{self.prefix}:run:{run_id}"

    def _stream_key(self, run_id: str) -> str:
        return f"{self.prefix}:run:{run_id}:events"

    def _instance_key(self, instance_id: str) -> str:
        return f"{self.prefix}:instance:{instance_id}"

    @property
    def _cancel_channel(self) -> str:
        return f"{self.prefix}:cancel"

    def _changes_channel(self, user_id: str) -> str:
        return f"{self.prefix}:changes:{user_id}"

    # lifecycle
    async def start(self, on_cancel: CancelHandler) -> None:
        self._on_cancel = on_cancel
        pubsub = await self._subscribe()
        self._listener = asyncio.create_task(self._listen(pubsub))
        await self._beat()
        self._heartbeat = asyncio.create_task(self._keep_beating())

    async def _beat(self) -> None:
        await self.redis.set(self._instance_key(self.instance_id), b"1", px=int(self.limits.lease_seconds * 1000))

    async def _keep_beating(self) -> None:
        """Keep this instance's lease while it serves: the runs it took into a session's line are lost with it."""
        while True:
            await asyncio.sleep(max(0.5, self.limits.lease_seconds / 3))
            try:
                await self._beat()
            except (RedisError, OSError):
                log.warning("could not renew this instance's lease", exc_info=True)

    async def instance_alive(self, instance_id: str) -> bool:
        return bool(await self.redis.exists(self._instance_key(instance_id)))

    async def _subscribe(self) -> Any:
        pubsub = self.redis.pubsub()
        await pubsub.subscribe(self._cancel_channel)
        await pubsub.psubscribe(self._changes_channel("*"))
        self._subscribed = True
        return pubsub

    async def close(self) -> None:
        for writer in list(self._writers.values()):
            with contextlib.suppress(Exception):
                await writer
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._heartbeat
        with contextlib.suppress(RedisError, OSError):
            await self.redis.delete(self._instance_key(self.instance_id))
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._listener
        await self._watcher.close()
        await self.redis.aclose()

    async def ping(self) -> bool:
        """Redis answers, and this instance hears cancel requests and session changes again."""
        try:
            return bool(await asyncio.wait_for(self.redis.ping(), timeout=2.0)) and self._subscribed
        except (RedisError, OSError, TimeoutError):
            return False

    async def _listen(self, pubsub: Any) -> None:
        """Deliver cancel requests and session changes published by any instance; if Redis goes away,
        subscribe again once it is back."""
        while True:
            try:
                await self._deliver(pubsub)
            except (RedisError, OSError):
                log.warning("lost the Redis subscription; subscribing again", exc_info=True)
            self._subscribed = False
            with contextlib.suppress(Exception):
                await pubsub.aclose()
            pubsub = None
            while pubsub is None:
                await asyncio.sleep(0.5)
                try:
                    pubsub = await self._subscribe()
                except (RedisError, OSError):
                    pubsub = None

    async def _deliver(self, pubsub: Any) -> None:
        changes_prefix = self._changes_channel("")
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5.0)
            if message is None:
                continue
            channel = message["channel"].decode()
            data = message["data"].decode()
            if channel == self._cancel_channel:
                if self._on_cancel is not None:
                    request = json.loads(data)
                    await self._on_cancel(request["run_id"], request["reason"])
            elif channel.startswith(changes_prefix):
                self._fanout.deliver(SessionChange(**json.loads(data)))

    # admission
    def _now_ms(self) -> int:
        return int(time.time() * 1000)

    async def admit(self, run: RunInfo) -> None:
        lease_ms = int(self.limits.lease_seconds * 1000)
        keys = [self._lock_key(run.session_id), self._user_key(run.user_id)]
        args: list[str | int] = [run.run_id, self._now_ms(), lease_ms, self.limits.max_runs_per_user]
        outcome = await self._admit(keys=keys, args=args)
        if outcome == b"BUSY":
            raise SessionBusy("A run is already going in this session; wait for it to end or cancel it.")
        if outcome == b"LIMIT":
            raise RateLimited(
                f"You have {self.limits.max_runs_per_user} runs going, the most allowed at once; wait for one to end.",
                limit=self.limits.max_runs_per_user,
            )
        self._local.open(run)
        info = {k: json.dumps(v) for k, v in asdict(run).items()}
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(self._info_key(run.run_id), mapping=info)
            pipe.expire(self._info_key(run.run_id), int(self.limits.running_ttl_seconds))
            await pipe.execute()

    async def renew(self, run: RunInfo) -> None:
        keys = [self._lock_key(run.session_id), self._user_key(run.user_id)]
        await self._renew(keys=keys, args=[run.run_id, self._now_ms(), int(self.limits.lease_seconds * 1000)])

    async def release(self, run: RunInfo) -> None:
        await self._flush(run.run_id)
        keys = [self._lock_key(run.session_id), self._user_key(run.user_id), self._info_key(run.run_id)]
        await self._release(keys=keys, args=[run.run_id])
        self._local.seal(run.run_id)

    # the event log
    async def append(self, run_id: str, events: Sequence[Event]) -> None:
        local = self._local.logs.get(run_id)
        if local is not None:
            await local.append(events)
        self._pending.setdefault(run_id, []).extend(events)
        if run_id not in self._writers:
            self._writers[run_id] = asyncio.create_task(self._write(run_id))

    async def _write(self, run_id: str) -> None:
        """Copy pending events to the stream, as many per round trip as have piled up."""
        key = self._stream_key(run_id)
        try:
            while self._pending.get(run_id):
                batch = self._pending.pop(run_id)
                async with self.redis.pipeline(transaction=False) as pipe:
                    for event in batch:
                        pipe.xadd(
                            key,
                            {"e": encode_event(event)},
                            id=_entry_id(event.index),
                            maxlen=self.limits.max_events_per_run,
                            approximate=True,
                        )
                    pipe.expire(key, int(self.limits.running_ttl_seconds))
                    await pipe.execute()
        except RedisError:
            log.exception("run %s: could not write events to Redis", run_id)
        finally:
            self._writers.pop(run_id, None)

    async def _flush(self, run_id: str) -> None:
        writer = self._writers.get(run_id)
        if writer is not None:
            await writer

    async def seal(self, run_id: str) -> None:
        await self._flush(run_id)
        retention = int(self.limits.retention_seconds)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.expire(self._stream_key(run_id), retention)
            pipe.expire(self._info_key(run_id), retention)
            await pipe.execute()
        self._local.seal(run_id)
        log_here = self._local.logs.get(run_id)
        if log_here is not None and log_here.events and isinstance(log_here.events[-1], Paused):
            # A paused run may go on on any instance: from now on only the stream tells it whole.
            del self._local.logs[run_id]

    def follow(self, run_id: str, after_index: int) -> AsyncIterator[Event]:
        local = self._local.log(run_id)
        # A continuation driven here holds only its own part: what came before the pause is in the stream.
        if local is not None and after_index + 1 >= local.first_index:
            local.check_available(after_index)
            return local.follow(after_index)
        return self._follow_stream(run_id, after_index)

    async def _follow_stream(self, run_id: str, after_index: int) -> AsyncIterator[Event]:
        key = self._stream_key(run_id)
        entries = await self.redis.xrange(key, min=f"({_entry_id(after_index)}", count=FOLLOW_BATCH)
        if not entries and not await self.redis.exists(key) and await self.run_state(run_id) != GOING:
            raise EventsExpired("The run's events are no longer held.")
        if entries and decode_event(entries[0][1][b"e"]).index > after_index + 1:
            raise EventsExpired(
                "Some of the events asked for are no longer held; read the run once it has ended.",
            )
        last_id = _entry_id(after_index)
        last_index = after_index
        ending_since: float | None = None
        while True:
            for entry_id, fields in entries:
                event = decode_event(fields[b"e"])
                last_id, last_index = entry_id, event.index
                yield event
                if isinstance(event, TERMINAL) and not await self._goes_on_after(run_id, key, event):
                    return
            entries = await self._read_after(key, last_id)
            if entries:
                continue
            state = await self.run_state(run_id)
            if state == GOING:
                continue
            if state == ENDING:
                # Released by its instance, which writes the terminal event next (later under load).
                ending_since = ending_since if ending_since is not None else time.monotonic()
                if time.monotonic() - ending_since < TERMINAL_GRACE_SECONDS:
                    continue
            # The instance driving the run went away without ending it.
            info = await self.run_info(run_id)
            yield Failed(
                run_id=run_id,
                session_id=info.session_id if info is not None else "",
                index=last_index + 1,
                created_at=time.time(),
                message="The server running this run stopped.",
                code=RUN_LOST,
            )
            return

    async def _goes_on_after(self, run_id: str, key: str, event: Event) -> bool:
        """Whether the run goes on past this terminal event: only a Paused one, once the run was continued (its
        next part is in the stream, or an instance holds the session for it)."""
        if not isinstance(event, Paused):
            return False
        if await self.redis.xrange(key, min=f"({_entry_id(event.index)}", count=1):
            return True
        return await self.run_state(run_id) == GOING

    async def _read_after(self, key: str, last_id: str | bytes) -> list[Any]:
        """The entries after `last_id`, waiting a while for some if there are none yet."""
        after = last_id.decode() if isinstance(last_id, bytes) else last_id
        entries = await self.redis.xrange(key, min=f"({after}", count=FOLLOW_BATCH)
        if entries:
            return list(entries)
        await self._watcher.wait(key, after, FOLLOW_WAIT_SECONDS)
        return list(await self.redis.xrange(key, min=f"({after}", count=FOLLOW_BATCH))

    async def run_state(self, run_id: str) -> str:
        """GOING (its instance holds the session), ENDING (released, its terminal event on the way), or LOST (no
        record, or the lease lapsed without a release: its instance went away)."""
        info = await self.run_info(run_id)
        if info is None:
            return LOST
        if info.finished:
            return ENDING
        held = await self.redis.get(self._lock_key(info.session_id)) == run_id.encode()
        return GOING if held else LOST

    async def held_events(self, run_id: str) -> list[Event]:
        entries = await self.redis.xrange(self._stream_key(run_id))
        return [decode_event(fields[b"e"]) for _entry_id, fields in entries]

    async def run_info(self, run_id: str) -> RunInfo | None:
        raw = await self.redis.hgetall(self._info_key(run_id))
        if not raw:
            return None
        values = {k.decode(): json.loads(v) for k, v in raw.items()}
        return RunInfo(**values)

    async def active_runs(self, session_ids: Sequence[str]) -> dict[str, str]:
        if not session_ids:
            return {}
        values = await self.redis.mget([self._lock_key(sid) for sid in session_ids])
        return {sid: value.decode() for sid, value in zip(session_ids, values, strict=True) if value is not None}

    async def request_cancel(self, run_id: str, reason: str) -> None:
        await self.redis.publish(self._cancel_channel, json.dumps({"run_id": run_id, "reason": reason}))

    async def set_pending_name(self, session_id: str, run_id: str, name: str) -> None:
        value = json.dumps({"run_id": run_id, "name": name})
        await self.redis.set(self._name_key(session_id), value, ex=int(self.limits.running_ttl_seconds))

    async def take_pending_name(self, session_id: str, run_id: str) -> str | None:
        name = await self._take_name(keys=[self._name_key(session_id)], args=[run_id])
        return name.decode() if isinstance(name, bytes) else None

    async def clear_pending_name(self, session_id: str) -> None:
        await self.redis.delete(self._name_key(session_id))

    async def publish_change(self, change: SessionChange) -> None:
        await self.redis.publish(self._changes_channel(change.user_id), json.dumps(asdict(change)))

    def changes(self, user_id: str) -> AsyncIterator[SessionChange]:
        return self._fanout.listen(user_id)

"""The Redis broker's session lease, against the real Redis: a renewal that comes after the release (a
renewer whose cancellation was lost inside a Redis call) must not take the session or the user's slot back."""

from __future__ import annotations

import time
import uuid

from agno_graphql.agents.broker import BrokerLimits, RunInfo
from agno_graphql.agents.redis_broker import RedisBroker

REDIS_URL = "redis://127.0.0.1:6379/0"


def _run(user_id: str) -> RunInfo:
    return RunInfo(
        run_id=str(uuid.uuid4()),
        session_id=str(uuid.uuid4()),
        agent_id="assistant",
        user_id=user_id,
        input="hello",
        created_at=time.time(),
    )


async def test_a_renewal_after_the_release_takes_nothing_back() -> None:
    broker = RedisBroker(REDIS_URL, BrokerLimits(max_runs_per_user=1), prefix=f"agql-test-{uuid.uuid4().hex[:8]}")
    user_id = f"user-{uuid.uuid4().hex[:8]}"
    first, second = _run(user_id), _run(user_id)
    try:
        await broker.admit(first)
        await broker.renew(first)
        await broker.release(first)
        await broker.renew(first)  # late

        assert await broker.active_runs([first.session_id]) == {}
        await broker.admit(second)  # the user's one slot is free: not RATE_LIMITED
        await broker.release(second)
    finally:
        await broker.close()

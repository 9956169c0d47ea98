"""The Redis broker's session lease, against the real Redis: a renewal that comes after the release (a
renewer whose cancellation was lost inside a Redis call) must not take the session or the user's slot back, and
a released run is never taken for lost by a follower on another instance."""

from __future__ import annotations

import time
import uuid
from typing import Any

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


async def test_a_released_run_is_never_seen_lost_by_a_follower_elsewhere() -> None:
    """Freeing the session and marking the run finished are one step: a follower on another instance that looks
    right after the session is freed sees a run ending (its terminal event on the way), never a lost one. Found by
    the soak: 5 of 11,141 runs ended RUN_LOST for a follower elsewhere and were stored COMPLETED."""
    prefix = f"agql-test-{uuid.uuid4().hex[:8]}"
    running = RedisBroker(REDIS_URL, BrokerLimits(), prefix=prefix)
    elsewhere = RedisBroker(REDIS_URL, BrokerLimits(), prefix=prefix)
    run = _run(f"user-{uuid.uuid4().hex[:8]}")
    seen_after_release: list[str] = []
    release_script = running._release

    async def release_then_look(*args: Any, **kwargs: Any) -> Any:
        result = await release_script(*args, **kwargs)
        seen_after_release.append(await elsewhere.run_state(run.run_id))
        return result

    try:
        await running.admit(run)
        assert await elsewhere.run_state(run.run_id) == "going"
        running._release = release_then_look  # type: ignore[method-assign]
        await running.release(run)
        assert seen_after_release == ["ending"]
        assert await elsewhere.run_state(run.run_id) == "ending"
    finally:
        await running.close()
        await elsewhere.close()

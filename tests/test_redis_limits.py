"""The limits of issue 3 with the Redis broker, across two instances sharing one database and one Redis:
a run whose events have expired from Redis is told from the store on the other instance, and a user's
cap on runs at once counts the runs of every instance."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

import pytest

from tests.client import RUN_AGENT
from tests.conftest import RunningServer, make_token, two_instances_over_redis
from tests.matrix_support import codes
from tests.run_support import check_run_told_from_store, refusal, run_input, subscription


@pytest.fixture(scope="module")
def two_instances(
    new_database_url: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RunningServer, RunningServer]]:
    """A and B on one database and one Redis prefix; events kept no time after a run ends, one run per user."""
    limits = {"offline_delay_ms": 40, "run_events_retention_seconds": 0, "max_runs_per_user": 1}
    with two_instances_over_redis(new_database_url("audit-redis"), tmp_path_factory, "audit", **limits) as pair:
        yield pair


async def test_a_run_whose_redis_events_expired_is_told_from_the_store_on_another_instance(
    two_instances: tuple[RunningServer, RunningServer], user_id: str
) -> None:
    a, b = two_instances
    await check_run_told_from_store(a, b, make_token(user_id))


async def test_a_users_cap_on_runs_at_once_counts_the_runs_of_every_instance(
    two_instances: tuple[RunningServer, RunningServer], user_id: str
) -> None:
    a, b = two_instances
    token = make_token(user_id)
    async with subscription(a, token, RUN_AGENT, run_input(None)) as first:
        head = await first.events("runAgent", stop_after=2)
        async with subscription(b, token, RUN_AGENT, run_input(None, "on b")) as second:
            refused = await second.next()
        tail = await asyncio.wait_for(first.events("runAgent"), timeout=30)
    assert codes(refusal(refused)) == ["RATE_LIMITED"]
    assert (head + tail)[-1]["__typename"] == "RunCompleted"
    # Once A's run has ended, the user's slot is free on B too.
    async with subscription(b, token, RUN_AGENT, run_input(None, "now")) as third:
        events = await asyncio.wait_for(third.events("runAgent"), timeout=30)
    assert events[-1]["content"] == "You said: now"

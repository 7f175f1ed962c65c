"""Redis stopped in the middle of a broadcast and started again empty (issue 18, scenario 2): the
queued jobs, arq's bookkeeping, the pacing budget and the rate-limit counters are all gone, and
for a while nothing answers at all. The worker must survive the outage, and the reconciler must
find the due work in PostgreSQL again: every device reached, duplicates within one worker's
bound, no batch left open, counters equal to the rows.

A scratch redis-server on a free port (tests/support/scratch_redis.py) that the test stops and
starts; the machine's shared Redis is never touched.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest
from redis.asyncio import Redis

from core.redis import close_redis, configure_redis
from tests.notifications.fault_checks import assert_recovered, recovery, run_broadcast_through
from tests.notifications.test_resilience import (
    PER_WORKER_BOUND,
    wait_for,
)
from tests.support.scratch_redis import ScratchRedis, answers
from workers.queue import close_pool

DEVICES = 6_000
DOWN_SECONDS = 5


@pytest.fixture
def scratch_redis() -> Iterator[ScratchRedis]:
    server = ScratchRedis()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def on_scratch_redis(
    scratch_redis: ScratchRedis, redis, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[str]:
    """The API (this process) and the worker (its environment) on the scratch Redis."""
    from core.config import get_settings

    await wait_for(lambda: answers(scratch_redis.url), timeout=10, what="the scratch Redis")
    monkeypatch.setattr(get_settings(), "redis_url", scratch_redis.url)
    monkeypatch.setenv("CHUONG_REDIS_URL", scratch_redis.url)
    await close_pool()
    await close_redis()
    configure_redis(Redis.from_url(scratch_redis.url, decode_responses=True))
    yield scratch_redis.url
    await close_pool()
    await close_redis()


@pytest.mark.slow
async def test_redis_stopped_and_started_empty_mid_broadcast_loses_nothing(
    client, database_url, owner_engine, emulated_settings, emulator, scratch_redis, on_scratch_redis
):
    async def stop_and_start_empty() -> None:
        scratch_redis.stop()
        await asyncio.sleep(DOWN_SECONDS)
        scratch_redis.start()  # empty: every job, lock and counter is gone

    notification_id, recovered = await run_broadcast_through(
        client, database_url, owner_engine, emulator, stop_and_start_empty, devices=DEVICES, sent_before=1000
    )
    result = await recovery(owner_engine, emulator, notification_id, devices=DEVICES)
    print(
        "\nredis restart: "
        + f"down {DOWN_SECONDS} s, came back empty, finished {recovered:.1f} s after it came back"
        + f"; {result.line()}"
    )
    assert_recovered(result, max_duplicates=PER_WORKER_BOUND)

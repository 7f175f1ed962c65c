"""core/stream_slots.py: a bounded number of open streams per owner, also under concurrent opens
(the counting and the taking used to be two round trips, so a burst could all see room)."""

from __future__ import annotations

import asyncio

from core import stream_slots


async def test_a_burst_of_concurrent_opens_takes_exactly_the_cap(redis):
    taken = await asyncio.gather(
        *(stream_slots.take("t:burst", cap=3, lifetime_seconds=60) for _ in range(40))
    )
    assert sum(slot is not None for slot in taken) == 3
    assert await redis.zcard("t:burst") == 3


async def test_a_released_slot_is_free_again_and_owners_are_separate(redis):
    first = await stream_slots.take("t:a", cap=1, lifetime_seconds=60)
    assert first is not None
    assert await stream_slots.take("t:a", cap=1, lifetime_seconds=60) is None
    assert await stream_slots.take("t:b", cap=1, lifetime_seconds=60) is not None
    await stream_slots.release("t:a", first)
    assert await stream_slots.take("t:a", cap=1, lifetime_seconds=60) is not None


async def test_a_slot_never_released_expires_on_redis_time(redis):
    # A killed API process never releases: the slot ends with its lifetime, judged by Redis's clock.
    assert await stream_slots.take("t:gone", cap=1, lifetime_seconds=0.2) is not None
    assert await stream_slots.take("t:gone", cap=1, lifetime_seconds=0.2) is None
    await asyncio.sleep(0.3)
    assert await stream_slots.take("t:gone", cap=1, lifetime_seconds=0.2) is not None
    assert 0 < await redis.ttl("t:gone") <= 6  # the set itself does not outlive its slots for long


async def test_redis_down_fails_open():
    # A real client on a port nothing listens on: connection refused, as when Redis is down.
    from redis.asyncio import Redis

    from core.redis import close_redis, configure_redis

    configure_redis(Redis.from_url("redis://127.0.0.1:9", socket_connect_timeout=1))
    try:
        assert await stream_slots.take("t:down", cap=1, lifetime_seconds=60) is not None
        await stream_slots.release("t:down", "x")  # swallows the error too
    finally:
        await close_redis()

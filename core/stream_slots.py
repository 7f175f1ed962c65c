"""Slots for long-lived streams: at most ``cap`` open at once per owner (a reader's inbox streams,
an operator's live views), so one account cannot hold thousands of connections and the work they
do every few seconds.

A sorted set per owner, each member a stream scored by when it ends at the latest: a stream that
ends without saying so (a killed API process) frees its slot by itself. Counting and taking a slot
is one Lua script, so concurrent opens cannot all see room and all take it, and the scores use
Redis's clock, so API hosts whose clocks differ (or step) agree on when a slot has expired. Fails
open when Redis is down, like the rate limits: a stream is not refused for a counter.
"""

from __future__ import annotations

import contextlib
import uuid

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from core.redis import get_redis

# KEYS[1] the owner's set; ARGV: slot, cap, lifetime (s). Returns 1 if taken, 0 if full.
_TAKE = """
local now = redis.call('TIME')
local now_s = tonumber(now[1]) + tonumber(now[2]) / 1000000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_s)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[1], now_s + tonumber(ARGV[3]), ARGV[1])
redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[3])) + 5)
return 1
"""

_script: tuple[Redis, AsyncScript] | None = None


def _take_script(redis: Redis) -> AsyncScript:
    # Rebuilt when the process's client is replaced (tests configure a client per test).
    global _script
    if _script is None or _script[0] is not redis:
        _script = (redis, redis.register_script(_TAKE))
    return _script[1]


async def take(key: str, *, cap: int, lifetime_seconds: float) -> str | None:
    """A new slot's id, or None when ``cap`` slots are already open under ``key``. A slot lives
    at most ``lifetime_seconds`` (the stream's own limit plus a margin) unless released."""
    slot = uuid.uuid4().hex
    try:
        redis = get_redis()
        taken = await _take_script(redis)(keys=[key], args=[slot, cap, lifetime_seconds])
    except RedisError:
        return slot
    return slot if taken == 1 else None


async def release(key: str, slot: str) -> None:
    with contextlib.suppress(RedisError):  # else the slot expires on its own
        await get_redis().zrem(key, slot)

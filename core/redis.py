"""One shared Redis client per process (rate limits, token caches, job wake-ups)."""

from __future__ import annotations

from redis.asyncio import Redis

from core.config import get_settings

_client: Redis | None = None


def get_redis() -> Redis:
    global _client
    if _client is None:
        # Short timeouts: a Redis that hangs must not hang requests (rate limits fail open).
        _client = Redis.from_url(
            get_settings().redis_url, decode_responses=True, socket_connect_timeout=0.5, socket_timeout=0.5
        )
    return _client


def configure_redis(client: Redis | None) -> None:
    global _client
    _client = client


async def close_redis() -> None:
    global _client
    if _client is not None:
        await _client.aclose()
    _client = None

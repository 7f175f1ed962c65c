"""One shared Redis client per process (rate limits, token caches, job wake-ups), and the one
way to make another (a subscribed pub/sub connection cannot serve other commands)."""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

from core.config import get_settings
from core.tls import redis_tls_options

_client: Redis | None = None


def new_redis_client(**options: Any) -> Redis:
    """A client of CHUONG_REDIS_URL with the TLS settings applied (a rediss:// URL); every Redis
    connection of the service is made here or by arq's pool (workers/queue.py)."""
    settings = get_settings()
    client: Redis = Redis.from_url(settings.redis_url, **redis_tls_options(settings), **options)
    return client


def get_redis() -> Redis:
    global _client
    if _client is None:
        # Short timeouts: a Redis that hangs must not hang requests (rate limits fail open).
        _client = new_redis_client(decode_responses=True, socket_connect_timeout=0.5, socket_timeout=0.5)
    return _client


def configure_redis(client: Redis | None) -> None:
    global _client
    _client = client


async def close_redis() -> None:
    global _client
    if _client is not None:
        await _client.aclose()
    _client = None

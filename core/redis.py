"""One shared Redis client per process (rate limits, token caches, job wake-ups), and the one
way to make another (a subscribed pub/sub connection cannot serve other commands)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from redis.asyncio import Redis
from redis.asyncio.sentinel import Sentinel

from core.config import get_settings
from core.tls import redis_tls_options

_client: Redis | None = None


def new_redis_client(**options: Any) -> Redis:
    """A client of CHUONG_REDIS_URL with the TLS settings applied (a rediss:// URL), or of the
    master the Sentinels name (CHUONG_REDIS_SENTINELS); every Redis connection of the service is
    made here or by arq's pool (workers/queue.py)."""
    settings = get_settings()
    if settings.redis_sentinels:
        return _sentinel_master(settings.sentinel_addresses(), settings.redis_sentinel_master, **options)
    client: Redis = Redis.from_url(settings.redis_url, **redis_tls_options(settings), **options)
    return client


def _sentinel_master(addresses: list[tuple[str, int]], master: str, **options: Any) -> Redis:
    # The URL still names the database and the credentials. A connection that meets a demoted
    # master (READONLY) or a dead one asks the Sentinels again (redis-py's SentinelConnectionPool).
    url = urlsplit(get_settings().redis_url)
    database = int(url.path.lstrip("/") or 0)
    timeouts = {
        name: options[name] for name in ("socket_connect_timeout", "socket_timeout") if name in options
    }
    sentinel = Sentinel(addresses, sentinel_kwargs=timeouts)  # type: ignore[no-untyped-call]
    client: Redis = sentinel.master_for(
        master, redis_class=Redis, db=database, username=url.username, password=url.password, **options
    )
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

"""Rate limits per client IP, per account and per API client, kept in Redis (D-41).

Counting is done by the ``limits`` library (sliding-window counter: two counters per identity,
O(1) memory and server-side time). On top of it sits an abuse block: every rejection is a
strike, and an identity that collects ``abuse_strikes`` strikes within ``abuse_window_seconds``
is blocked outright for ``abuse_block_seconds``; the block is audited once.

Limits are read from settings on every call (tests and operators change them at run time);
parsing is cached by the limit string. If Redis is unreachable the limiter fails open and logs a
warning: availability of pushes matters more than throttling.
"""

from __future__ import annotations

import math
import time
from functools import lru_cache

from limits import RateLimitItem, parse
from limits.aio.storage import RedisStorage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from redis.asyncio import Redis
from redis.exceptions import RedisError

from auth import audit
from auth.metrics import SIGNIN_THROTTLED
from core.config import get_settings
from core.errors import TooManyRequests
from core.logging import get_logger
from core.netaddr import address_identity
from core.redis import get_redis

log = get_logger(__name__)

BLOCK_PREFIX = "chuong:block:"
STRIKES_PREFIX = "chuong:strikes:"
TRIPPED_PREFIX = "chuong:tripped:"
LIMITS_PREFIX = "chuong:rl"
# A dead Redis would otherwise log one warning per request.
_WARN_EVERY_SECONDS = 30.0

_limiter: tuple[Redis, SlidingWindowCounterRateLimiter] | None = None
_last_warning = -math.inf


async def enforce_ip(ip: str) -> None:
    """Every request, whatever its access policy (``api.deps.AccessPolicy`` counts it once),
    keyed by the client address (after trusted proxies; IPv6 by its /64)."""
    if ip:
        await _enforce(f"ip:{address_identity(ip)}", get_settings().rate_limit_per_ip)


async def enforce_login(ip: str) -> None:
    """Sign-in and refresh, keyed by address: a tighter limit against password guessing."""
    if ip:
        try:
            await _enforce(f"login-ip:{address_identity(ip)}", get_settings().rate_limit_login_per_ip)
        except TooManyRequests:
            SIGNIN_THROTTLED.labels("address_limited").inc()
            raise


async def enforce_anonymous_registration(network: str | None) -> None:
    """A device registration without credentials: per network (IPv4 /24, IPv6 /64) and for the
    whole service. Past the global limit nobody is blocked beyond the window (it is everyone's
    budget, not one abuser's); its first rejection of each window is audited instead."""
    settings = get_settings()
    if network:
        await _enforce(f"device-reg:{network}", settings.device_registration_limit_per_network)
    await _enforce("device-reg:all", settings.device_registration_limit_global, block=False)


async def enforce_account(user_id: str) -> None:
    """Per signed-in account, whatever address it comes from."""
    await _enforce(f"account:{user_id}", get_settings().rate_limit_per_account)


async def enforce_client(client_id: str) -> None:
    """Per API client (connected system)."""
    await _enforce(f"client:{client_id}", get_settings().rate_limit_per_client)


@lru_cache(maxsize=64)
def _parse(spec: str) -> RateLimitItem:
    item: RateLimitItem = parse(spec)
    return item


def _get_limiter(redis: Redis) -> SlidingWindowCounterRateLimiter:
    """A limiter on the process's shared Redis connection pool; rebuilt when the client is
    replaced (tests configure a client per test)."""
    global _limiter
    if _limiter is None or _limiter[0] is not redis:
        storage = RedisStorage(
            "async+" + get_settings().redis_url,
            implementation="redispy",
            key_prefix=LIMITS_PREFIX,
            # ``limits`` types its pass-through options as scalars; redis-py takes the pool.
            connection_pool=redis.connection_pool,  # type: ignore[arg-type]
        )
        _limiter = (redis, SlidingWindowCounterRateLimiter(storage))
    return _limiter[1]


async def _enforce(key: str, spec: str, *, block: bool = True) -> None:
    """``block``: repeated rejections turn into an abuse block (identities of one caller); off
    for shared budgets, where only the first rejection of each window is audited."""
    redis = get_redis()
    try:
        blocked_for = await redis.ttl(BLOCK_PREFIX + key)
        if blocked_for != -2:  # -2: no such key; -1 (no expiry) should not happen, but is a block
            raise _blocked(blocked_for if blocked_for > 0 else get_settings().abuse_block_seconds)
        item = _parse(spec)
        limiter = _get_limiter(redis)
        if await limiter.hit(item, key):
            return
        stats = await limiter.get_window_stats(item, key)
        retry_after = max(1, math.ceil(stats.reset_time - time.time()))
        if not block:
            if await redis.set(TRIPPED_PREFIX + key, "1", ex=retry_after, nx=True):
                await audit.record_detached(
                    action="ratelimit.exceeded",
                    outcome="denied",
                    object_type="rate_limit",
                    object_id=key,
                    details={"limit": spec},
                )
            raise TooManyRequests(f"Rate limit of {spec} exceeded", retry_after=retry_after)
        blocked, newly = await _strike(redis, key)
        if newly:
            await audit.record_detached(
                action="ratelimit.blocked",
                outcome="denied",
                object_type="rate_limit",
                object_id=key,
                details={
                    "limit": spec,
                    "strikes": get_settings().abuse_strikes,
                    "block_seconds": get_settings().abuse_block_seconds,
                },
            )
        if blocked:
            raise _blocked(get_settings().abuse_block_seconds)
    except RedisError as exc:
        _warn_fail_open(key, exc)
        return
    raise TooManyRequests(f"Rate limit of {spec} exceeded", retry_after=retry_after)


async def _strike(redis: Redis, key: str) -> tuple[bool, bool]:
    """Count one rejection; returns (blocked now, this strike set the block). Only the strike
    that sets the block audits it, even when concurrent requests cross the threshold together."""
    settings = get_settings()
    strikes_key = STRIKES_PREFIX + key
    async with redis.pipeline(transaction=True) as pipe:
        # SET NX starts the window's TTL on the first strike; INCR keeps that TTL.
        pipe.set(strikes_key, 0, ex=settings.abuse_window_seconds, nx=True)
        pipe.incr(strikes_key)
        _, strikes = await pipe.execute()
    if int(strikes) < settings.abuse_strikes:
        return False, False
    created = await redis.set(BLOCK_PREFIX + key, "1", ex=settings.abuse_block_seconds, nx=True)
    await redis.delete(strikes_key)
    return True, bool(created)


def _blocked(seconds: int) -> TooManyRequests:
    return TooManyRequests(
        "Temporarily blocked after repeated excess requests", code="temporarily_blocked", retry_after=seconds
    )


def _warn_fail_open(key: str, exc: Exception) -> None:
    global _last_warning
    now = time.monotonic()
    if now - _last_warning >= _WARN_EVERY_SECONDS:
        _last_warning = now
        kind = key.split(":", 1)[0]
        log.warning("ratelimit_unavailable_fail_open", key_kind=kind, error=type(exc).__name__)

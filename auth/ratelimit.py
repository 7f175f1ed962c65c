"""Rate limits per client IP, per account and per API client, kept in Redis (D-41).

Counting is a sliding-window counter (two counters per identity, O(1) memory, server-side
time: the algorithm of the ``limits`` library, whose parser reads the limit strings), done by one
Lua script that takes every limit a request is counted against — the address and the device,
say — in a single Redis round trip (``enforce``): each identity's block is checked and its
window counted, in order, and the first refusal ends the script. On top of it sits an abuse
block: every rejection is a strike, and an identity that collects ``abuse_strikes`` strikes
within ``abuse_window_seconds`` is blocked outright for ``abuse_block_seconds``; the block is
audited once. Only refusals take further round trips.

Limits are read from settings on every call (tests and operators change them at run time);
parsing is cached by the limit string. If Redis is unreachable the limiter fails open and logs a
warning: availability of pushes matters more than throttling.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass
from functools import lru_cache

from limits import RateLimitItem, parse
from redis.asyncio import Redis
from redis.exceptions import NoScriptError, RedisError

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

_last_warning = -math.inf

# KEYS: three per identity (its block, its previous window, its current window); ARGV: two per
# identity (the limit, the window in ms). Identities are taken in order: the first blocked or
# over its limit ends the script, and those before it stay counted (as one call each would).
# Returns {0, 0} when every identity passed, else {i, 1, block ms left} (blocked) or {i, 2,
# ms until a request would pass} (over the limit), i counted from 1. Windows as in ``limits``:
# the current counter lives two windows; once it is a window old it becomes the previous one,
# whose count weighs as much as its remaining life.
_LUA = """
for i = 1, #KEYS / 3 do
  local block, previous, current = KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i]
  local limit, expiry = tonumber(ARGV[2 * i - 1]), tonumber(ARGV[2 * i])
  local blocked = redis.call('pttl', block)
  if blocked ~= -2 then
    return {i, 1, blocked}
  end
  local current_ttl = redis.call('pttl', current)
  if current_ttl > 0 and current_ttl < expiry then
    redis.call('rename', current, previous)
    redis.call('set', current, 0, 'PX', current_ttl + expiry)
    current_ttl = current_ttl + expiry
  end
  local previous_count = tonumber(redis.call('get', previous)) or 0
  local previous_ttl = math.max(redis.call('pttl', previous), 0)
  local current_count = tonumber(redis.call('get', current)) or 0
  if math.floor(previous_count * previous_ttl / expiry) + current_count + 1 > limit then
    local wait
    if current_count < limit and previous_count > 0 then
      -- until the previous window's weight has fallen far enough
      wait = previous_ttl - math.floor((limit - current_count) * expiry / previous_count) + 1
    else
      -- until the current window turns into the previous one
      wait = current_ttl - expiry
    end
    return {i, 2, wait}
  end
  if current_count > 0 or current_ttl > 0 then
    redis.call('incr', current)
  else
    redis.call('set', current, 1, 'PX', expiry * 2)
  end
end
return {0, 0}
"""
_BLOCKED = 1


@dataclass(frozen=True)
class Limit:
    """One identity counted against one limit string (e.g. ``ip:203.0.113.0`` and "600/minute").
    ``block``: repeated rejections turn into an abuse block (identities of one caller); off for
    shared budgets, where only the first rejection of each window is audited."""

    key: str
    spec: str
    block: bool = True


def address_limit(ip: str) -> Limit | None:
    """The per-address limit (after trusted proxies; IPv6 by its /64); none without an address."""
    return Limit(f"ip:{address_identity(ip)}", get_settings().rate_limit_per_ip) if ip else None


def client_limit(client_id: str) -> Limit:
    """Per API client (connected system) or device (``device:<id>``)."""
    return Limit(f"client:{client_id}", get_settings().rate_limit_per_client)


def anonymous_registration_limits(network: str | None) -> list[Limit]:
    """A device registration without credentials: per network (IPv4 /24, IPv6 /64) and for the
    whole service. Past the global limit nobody is blocked beyond the window (it is everyone's
    budget, not one abuser's); its first rejection of each window is audited instead."""
    settings = get_settings()
    limits = (
        [Limit(f"device-reg:{network}", settings.device_registration_limit_per_network)] if network else []
    )
    return [*limits, Limit("device-reg:all", settings.device_registration_limit_global, block=False)]


async def enforce_ip(ip: str) -> None:
    """Every request, whatever its access policy (``api.deps.AccessPolicy`` counts it once)."""
    await enforce(address_limit(ip))


async def enforce_login(ip: str) -> None:
    """Sign-in and refresh, keyed by address: a tighter limit against password guessing."""
    if ip:
        try:
            await enforce(Limit(f"login-ip:{address_identity(ip)}", get_settings().rate_limit_login_per_ip))
        except TooManyRequests:
            SIGNIN_THROTTLED.labels("address_limited").inc()
            raise


async def enforce_anonymous_registration(network: str | None) -> None:
    await enforce(*anonymous_registration_limits(network))


async def enforce_account(user_id: str) -> None:
    """Per signed-in account, whatever address it comes from."""
    await enforce(Limit(f"account:{user_id}", get_settings().rate_limit_per_account))


async def enforce_client(client_id: str) -> None:
    await enforce(client_limit(client_id))


@lru_cache(maxsize=64)
def _parse(spec: str) -> RateLimitItem:
    item: RateLimitItem = parse(spec)
    return item


_SHA = hashlib.sha1(_LUA.encode()).hexdigest()  # noqa: S324 (Redis names scripts by their SHA-1)


async def _run_script(redis: Redis, keys: list[str], args: list[int]) -> list[int]:
    """The script by ``EVALSHA`` on a connection of the client's pool, packed by the connection
    (redis-py's own RESP packer) and sent without the client's command path. Every request of
    the API runs this, and redis-py's general path (its retry and response-callback layers, the
    script object) cost about as much API CPU as the round trip: the pool still hands out a
    connection checked to be ready (and connected, through Sentinel or TLS as configured), and a
    failed or cancelled read still drops the connection (redis-py's ``read_response``). If Redis
    lost the script (a restart, a ``SCRIPT FLUSH``), ``EVAL`` runs it from its text and caches it
    again."""
    pool = redis.connection_pool
    connection = await pool.get_connection()
    try:
        await connection.send_packed_command(
            connection.pack_command("EVALSHA", _SHA, len(keys), *keys, *args), check_health=False
        )
        try:
            reply: list[int] = await connection.read_response()
        except NoScriptError:
            await connection.send_packed_command(
                connection.pack_command("EVAL", _LUA, len(keys), *keys, *args), check_health=False
            )
            reply = await connection.read_response()
        return reply
    finally:
        await pool.release(connection)


def window_key(limit: Limit) -> str:
    """The identity's current window (the previous one adds ``:previous``); the limit is part
    of the key, so a changed limit starts fresh counters."""
    item = _parse(limit.spec)
    return f"{LIMITS_PREFIX}:{limit.key}:{item.amount}/{item.get_expiry()}"


async def enforce(*limits: Limit | None) -> None:
    """Count the request against each limit in order, in one Redis round trip; raise
    TooManyRequests for the first that refuses it (429 with Retry-After)."""
    counted = [limit for limit in limits if limit is not None]
    if not counted:
        return
    redis = get_redis()
    keys: list[str] = []
    args: list[int] = []
    for limit in counted:
        current = window_key(limit)
        keys += [BLOCK_PREFIX + limit.key, f"{current}:previous", current]
        item = _parse(limit.spec)
        args += [item.amount, item.get_expiry() * 1000]
    try:
        index, verdict, *rest = await _run_script(redis, keys, args)
        if not index:
            return
        limit = counted[int(index) - 1]
        wait_ms = int(rest[0])
        if int(verdict) == _BLOCKED:
            # -1 (no expiry) should not happen, but is a block
            raise _blocked(math.ceil(wait_ms / 1000) if wait_ms > 0 else get_settings().abuse_block_seconds)
        await _refused(redis, limit, retry_after=max(1, math.ceil(wait_ms / 1000)))
    except RedisError as exc:
        _warn_fail_open(counted[0].key, exc)


async def _refused(redis: Redis, limit: Limit, *, retry_after: int) -> None:
    """A limit refused the request: a strike (or, for a shared budget, the window's first
    refusal audited), then 429."""
    key, spec = limit.key, limit.spec
    if not limit.block:
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

"""One send budget per push service, kept in Redis and shared by every worker process.

FCM enforces a project-wide quota (600,000 messages a minute by default) and answers
``429 QUOTA_EXCEEDED`` past it; Apple publishes no number but throttles connections that push
too hard. Each worker pacing itself would overshoot by the number of workers, so the budget is a
token bucket in one Redis hash per service (``chuong:pace:<family>``), taken from with a Lua
script: one atomic round trip per batch that grants up to N permits or says how long to wait.

Breaking news first: high and emergency pushes mark "high demand" for
``pacing_high_demand_seconds`` each time they ask. While that mark is fresh, normal-priority
(bulk) traffic may only spend a second, smaller bucket that refills at ``pacing_bulk_share`` of
the rate, so at least ``1 - bulk_share`` of the budget is left for the urgent pushes, and bulk
gets the whole budget back within seconds of the last urgent batch.

A ``QUOTA_EXCEEDED`` seen by any worker sets a back-off deadline in the same hash; every
acquirer (both lanes) waits for it, and the bucket restarts empty at the deadline so the workers
do not all burst at once. Redis is only a rate-limit store here: when it is unreachable the
controller fails open (grants everything, logs) — PostgreSQL holds the work, and a push that the
provider then refuses is retried by the outbox like any other.

Time comes from ``core.clock`` (passed to the script), so tests move time instead of sleeping;
that clock is the database's in every worker (core/clock_sync.py), so a host whose wall clock
is stepped does not move the bucket's times (docs/delivery.md "Clocks").
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass
from typing import Any, Literal

from prometheus_client import Counter, Gauge
from redis.asyncio import Redis
from redis.exceptions import NoScriptError

from core import clock
from core.config import Settings, get_settings
from core.logging import get_logger
from core.redis import get_redis

log = get_logger(__name__)

Lane = Literal["high", "bulk"]
Family = Literal["fcm", "apns"]
HIGH_PRIORITIES = frozenset({"high", "emergency"})
# A grant smaller than this (unless fewer are wanted) is not worth a provider round trip; the
# caller waits for enough permits to accumulate instead.
MIN_GRANT = 50
KEY_TTL_MS = 3_600_000  # an idle budget disappears after an hour and starts full again
FAIL_OPEN_LOG_EVERY_SECONDS = 30.0

PERMITS = Counter(
    "chuong_pacing_permits_granted_total",
    "Send permits granted by the shared rate controller",
    ["provider", "lane"],
)
WAITS = Counter(
    "chuong_pacing_waits_total",
    "Permit requests told to wait (budget spent or back-off)",
    ["provider", "lane"],
)
WAIT_SECONDS = Counter(
    "chuong_pacing_wait_seconds_total", "Seconds of waiting announced to acquirers", ["provider", "lane"]
)
QUOTA_BACKOFFS = Counter(
    "chuong_pacing_quota_backoffs_total", "QUOTA_EXCEEDED answers that paused every worker", ["provider"]
)
FAIL_OPEN = Counter(
    "chuong_pacing_fail_open_total", "Permit requests granted unchecked because Redis failed", ["provider"]
)
BACKOFF_REMAINING = Gauge(
    "chuong_pacing_backoff_remaining_seconds",
    "Quota back-off left, as last seen by this process",
    ["provider"],
)

# KEYS[1] the budget hash. ARGV: now, wanted, lane, rate/s, capacity, bulk share, bulk capacity,
# high-demand window, minimum grant. Returns {granted, wait seconds (string), 1 if backing off}.
# Numbers go back as strings: Redis truncates Lua numbers to integers.
_ACQUIRE = """
local key = KEYS[1]
local now = tonumber(ARGV[1])
local want = tonumber(ARGV[2])
local high = ARGV[3] == 'high'
local rate = tonumber(ARGV[4])
local capacity = tonumber(ARGV[5])
local share = tonumber(ARGV[6])
local bulk_capacity = tonumber(ARGV[7])
local window = tonumber(ARGV[8])
local min_grant = tonumber(ARGV[9])

local s = redis.call('HMGET', key, 'tokens', 'ts', 'allowance', 'hi_until', 'backoff_until')
local tokens = tonumber(s[1]) or capacity
local ts = tonumber(s[2]) or now
local allowance = tonumber(s[3]) or bulk_capacity
local hi_until = tonumber(s[4]) or 0
local backoff_until = tonumber(s[5]) or 0

local elapsed = now - ts
if elapsed > 0 then
  tokens = math.min(capacity, tokens + elapsed * rate)
  allowance = math.min(bulk_capacity, allowance + elapsed * rate * share)
  ts = now
end
if high then hi_until = math.max(hi_until, now + window) end

local granted = 0
local wait = 0
local backing_off = 0
if now < backoff_until then
  wait = backoff_until - now
  backing_off = 1
else
  local contended = (not high) and now < hi_until
  local need = math.min(want, min_grant)
  local available = tokens
  if contended then available = math.min(tokens, allowance) end
  if available >= need and not (contended and share <= 0) then
    granted = math.min(want, math.floor(available))
    tokens = tokens - granted
    if not high then allowance = math.max(0, allowance - granted) end
  else
    wait = math.max(0.001, (need - tokens) / rate)
    if contended then
      if share > 0 then
        wait = math.max(wait, (need - allowance) / (rate * share))
      else
        wait = math.max(wait, hi_until - now)
      end
    end
  end
end
redis.call('HSET', key, 'tokens', tostring(tokens), 'ts', tostring(ts), 'allowance', tostring(allowance),
  'hi_until', tostring(hi_until), 'backoff_until', tostring(backoff_until))
redis.call('PEXPIRE', key, tonumber(ARGV[10]))
return {granted, tostring(wait), backing_off}
"""

# KEYS[1] the budget hash. ARGV: back-off deadline, TTL ms. The bucket restarts empty at the
# deadline (ts in the future: nothing refills before it). Returns 1 when the deadline moved.
_BACKOFF = """
local key = KEYS[1]
local deadline = tonumber(ARGV[1])
local current = tonumber(redis.call('HGET', key, 'backoff_until')) or 0
if deadline <= current then return 0 end
redis.call('HSET', key, 'backoff_until', tostring(deadline), 'tokens', '0', 'allowance', '0',
  'ts', tostring(deadline))
redis.call('PEXPIRE', key, tonumber(ARGV[2]))
return 1
"""


def _sha(script: str) -> str:
    return hashlib.sha1(script.encode(), usedforsecurity=False).hexdigest()


_ACQUIRE_SHA = _sha(_ACQUIRE)
_BACKOFF_SHA = _sha(_BACKOFF)


@dataclass(frozen=True)
class Budget:
    rate: float  # permits a second
    capacity: float  # bucket depth


@dataclass(frozen=True)
class Grant:
    granted: int
    wait: float  # seconds to wait before asking again (0 when something was granted)
    backing_off: bool = False
    fail_open: bool = False


def lane_of(priority: str) -> Lane:
    return "high" if priority in HIGH_PRIORITIES else "bulk"


def family_of(provider_key: str) -> Family:
    """Sandbox and production APNs share one pace (the same team's key, the same sender)."""
    return "apns" if provider_key.startswith("apns") else "fcm"


def budgets(settings: Settings) -> dict[Family, Budget]:
    fcm_rate = settings.fcm_quota_per_minute / 60.0
    apns_rate = settings.apns_pace_per_second
    burst = settings.pacing_burst_seconds
    return {
        "fcm": Budget(rate=fcm_rate, capacity=max(1.0, fcm_rate * burst)),
        "apns": Budget(rate=apns_rate, capacity=max(1.0, apns_rate * burst)),
    }


class RateController:
    """Shared permits for one deployment. Cheap to build; holds no connection of its own (the
    process's Redis client is looked up on every call, so a reconnected client is picked up)."""

    def __init__(
        self,
        *,
        settings: Settings | None = None,
        redis: Redis | None = None,
        prefix: str = "chuong:pace",
    ) -> None:
        self.settings = settings or get_settings()
        self._redis = redis
        self.prefix = prefix
        self.budgets = budgets(self.settings)
        self._last_fail_open_log = -math.inf

    def _client(self) -> Redis:
        return self._redis if self._redis is not None else get_redis()

    async def _run(self, script: str, sha: str, key: str, *args: str | int) -> Any:
        """EVALSHA (the script's text is sent once per Redis, not with every batch)."""
        # redis-py types eval/evalsha for its sync and async clients at once; this one awaits.
        client: Any = self._client()
        try:
            return await client.evalsha(sha, 1, key, *args)
        except NoScriptError:
            return await client.eval(script, 1, key, *args)

    def key(self, family: Family) -> str:
        return f"{self.prefix}:{family}"

    async def acquire(self, family: Family, lane: Lane, wanted: int, *, now: float | None = None) -> Grant:
        """Up to ``wanted`` permits now, or how long to wait. Never raises: Redis trouble grants
        everything (fail open) and is logged."""
        if wanted <= 0:
            return Grant(granted=0, wait=0.0)
        budget = self.budgets[family]
        settings = self.settings
        share = settings.pacing_bulk_share
        bulk_capacity = max(1.0, budget.capacity * share)
        min_grant = max(1, min(MIN_GRANT, int(budget.capacity), int(bulk_capacity)))
        at = clock.utcnow().timestamp() if now is None else now
        try:
            granted, wait, backing_off = await self._run(
                _ACQUIRE,
                _ACQUIRE_SHA,
                self.key(family),
                repr(at),
                wanted,
                lane,
                repr(budget.rate),
                repr(budget.capacity),
                repr(share),
                repr(bulk_capacity),
                repr(settings.pacing_high_demand_seconds),
                min_grant,
                KEY_TTL_MS,
            )
        except Exception as exc:  # Redis down or slow: never hold deliveries back for it
            self._fail_open(family, exc)
            return Grant(granted=wanted, wait=0.0, fail_open=True)
        grant = Grant(granted=int(granted), wait=float(wait), backing_off=bool(int(backing_off)))
        BACKOFF_REMAINING.labels(family).set(grant.wait if grant.backing_off else 0.0)
        if grant.granted:
            PERMITS.labels(family, lane).inc(grant.granted)
        else:
            WAITS.labels(family, lane).inc()
            WAIT_SECONDS.labels(family, lane).inc(grant.wait)
        return grant

    async def back_off(self, family: Family, *, retry_after: float | None, now: float | None = None) -> bool:
        """The provider said the project is over quota: every worker pauses until Retry-After
        (or ``pacing_quota_backoff_seconds``). Returns whether the shared deadline moved."""
        seconds = retry_after if retry_after is not None else self.settings.pacing_quota_backoff_seconds
        at = clock.utcnow().timestamp() if now is None else now
        try:
            moved = await self._run(_BACKOFF, _BACKOFF_SHA, self.key(family), repr(at + seconds), KEY_TTL_MS)
        except Exception as exc:
            self._fail_open(family, exc)
            return False
        QUOTA_BACKOFFS.labels(family).inc()
        if moved:
            log.warning("pacing_quota_backoff", provider=family, seconds=seconds)
        return bool(moved)

    def _fail_open(self, family: Family, exc: Exception) -> None:
        FAIL_OPEN.labels(family).inc()
        # One line per process every 30 s: a Redis outage must not flood the logs per batch.
        if time.monotonic() - self._last_fail_open_log >= FAIL_OPEN_LOG_EVERY_SECONDS:
            self._last_fail_open_log = time.monotonic()
            log.warning("pacing_fail_open", provider=family, error=type(exc).__name__, detail=str(exc)[:200])

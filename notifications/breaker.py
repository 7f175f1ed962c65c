"""A circuit breaker on push providers' error rates (D-31 "when the system is disrupted", D-43).

``record_outcomes`` is called by the send-batch job with each batch's results. Per provider it
counts answers and errors in Redis buckets of ``BUCKET_SECONDS``; the error rate is taken over
the buckets of the last ``push_breaker_window_seconds`` (a sliding window, bucket-grained).
When at least ``push_breaker_min_requests`` answers came and the error rate reaches
``push_breaker_error_rate``, the breaker opens: once per opening it logs an error, counts an
alert and writes an audit row (the API exports the state itself from Redis as
``chuong_push_breaker_open``, notifications/figures.py). It does not stop pushes; it tells the
operator, who may switch on SMS degraded mode (``/v1/sms/degraded-mode``). It closes when a full
sample shows the rate back under the threshold.

Redis is only an alarm here: losing the counters loses a few minutes of statistics, never a
push. Failures inside are logged and swallowed so delivery is never affected.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from auth import audit
from core.clock import utcnow
from core.config import get_settings
from core.context import RequestContext, current_context, set_context
from core.errors import Conflict, NotFound
from core.logging import get_logger
from core.redis import get_redis
from notifications.providers.base import Outcome, SendResult
from notifications.sms.metrics import BREAKER_ALERTS

log = get_logger(__name__)

BUCKET_SECONDS = 10
PREFIX = "chuong:breaker"
PROVIDERS_KEY = f"{PREFIX}:providers"
ERROR_OUTCOMES = frozenset({Outcome.RETRY, Outcome.FAILED})


@dataclass(frozen=True)
class BreakerState:
    provider: str
    requests: int
    errors: int
    error_rate: float
    open: bool
    opened_at: str | None


def _bucket_key(provider: str, bucket: int) -> str:
    return f"{PREFIX}:{provider}:{bucket}"


def _open_key(provider: str) -> str:
    return f"{PREFIX}:{provider}:open"


def _buckets(now: dt.datetime) -> list[int]:
    window = get_settings().push_breaker_window_seconds
    current = int(now.timestamp()) // BUCKET_SECONDS
    return list(range(current - window // BUCKET_SECONDS + 1, current + 1))


async def record_outcomes(
    results: Sequence[tuple[Any, SendResult]], *, now: dt.datetime | None = None
) -> list[str]:
    """Count one send batch's results per provider; returns the providers whose breaker opened
    with this call. ``results`` are ``dispatch.send_claimed``'s (delivery, result) pairs."""
    try:
        return await _record(results, now or utcnow())
    except Exception as exc:  # never let the alarm break delivery
        log.warning("push_breaker_record_failed", error=type(exc).__name__)
        return []


async def _record(results: Sequence[tuple[Any, SendResult]], now: dt.datetime) -> list[str]:
    from notifications.dispatch import provider_key

    answers: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    accepted: Counter[str] = Counter()
    for delivery, result in results:
        if result.error_code == "device_retired" or not result.attempted:
            # Never reached a provider: a retired device, or held back by the shared pacing
            # ("deferred"): the provider said nothing, so it is neither an answer nor an error.
            continue
        key = provider_key(delivery)
        answers[key] += 1
        if result.outcome in ERROR_OUTCOMES:
            errors[key] += 1
        elif result.outcome is Outcome.ACCEPTED:
            accepted[key] += 1
    if not answers:
        return []
    redis = get_redis()
    current = _buckets(now)[-1]
    ttl = get_settings().push_breaker_window_seconds + 2 * BUCKET_SECONDS
    pipe = redis.pipeline(transaction=False)
    for provider, count in answers.items():
        key = _bucket_key(provider, current)
        pipe.hincrby(key, "n", count)
        pipe.hincrby(key, "e", errors[provider])
        pipe.hincrby(key, "a", accepted[provider])  # the console's delivery rate (notifications/headline.py)
        pipe.expire(key, ttl)
    pipe.sadd(PROVIDERS_KEY, *answers)
    # Each provider's window is read in the same round trip, after the counts (one round trip
    # per chunk; the state is what ``state`` would read right after them).
    for provider in answers:
        _read_state(pipe, provider, now)
    replies = await pipe.execute()
    opened = []
    at = 4 * len(answers) + 1
    width = len(_buckets(now)) + 1
    for provider in answers:
        seen = _state_of(provider, replies[at : at + width])
        at += width
        if await _evaluate(seen, now):
            opened.append(provider)
    return opened


def _read_state(pipe: Any, provider: str, now: dt.datetime) -> None:
    for bucket in _buckets(now):
        pipe.hmget(_bucket_key(provider, bucket), ["n", "e"])
    pipe.get(_open_key(provider))


async def state(provider: str, *, now: dt.datetime | None = None) -> BreakerState:
    pipe = get_redis().pipeline(transaction=False)
    _read_state(pipe, provider, now or utcnow())
    return _state_of(provider, await pipe.execute())


def _state_of(provider: str, replies: list[Any]) -> BreakerState:
    requests = sum(int(n or 0) for n, _ in replies[:-1])
    errors_seen = sum(int(e or 0) for _, e in replies[:-1])
    opened = orjson.loads(replies[-1]) if replies[-1] else None
    return BreakerState(
        provider=provider,
        requests=requests,
        errors=errors_seen,
        error_rate=errors_seen / requests if requests else 0.0,
        open=opened is not None,
        opened_at=opened["opened_at"] if opened else None,
    )


@dataclass(frozen=True)
class RecentAnswers:
    """A provider's answers over the last few buckets: ``seconds`` is the span they cover (the
    whole older buckets and the current one so far), so ``accepted / seconds`` is a rate."""

    provider: str
    seconds: float
    answers: int
    errors: int
    accepted: int


async def recent_answers(*, seconds: int, now: dt.datetime | None = None) -> list[RecentAnswers]:
    """Every known provider's answers over about the last ``seconds`` (bucket-grained, at most
    the breaker's window: older buckets have expired). One pipelined round trip."""
    moment = (now or utcnow()).timestamp()
    current = int(moment) // BUCKET_SECONDS
    count = max(1, min(seconds, get_settings().push_breaker_window_seconds) // BUCKET_SECONDS)
    buckets = range(current - count + 1, current + 1)
    span = moment - buckets[0] * BUCKET_SECONDS
    members: set[str] = await get_redis().smembers(PROVIDERS_KEY)  # type: ignore[misc]  # redis-py's sync|async union
    providers = sorted(str(provider) for provider in members or [])
    pipe = get_redis().pipeline(transaction=False)
    for provider in providers:
        for bucket in buckets:
            pipe.hmget(_bucket_key(provider, bucket), ["n", "e", "a"])
    replies = iter(await pipe.execute())
    recent = []
    for provider in providers:
        counts = [next(replies) for _ in buckets]
        recent.append(
            RecentAnswers(
                provider=provider,
                seconds=span,
                answers=sum(int(n or 0) for n, _, _ in counts),
                errors=sum(int(e or 0) for _, e, _ in counts),
                accepted=sum(int(a or 0) for _, _, a in counts),
            )
        )
    return recent


async def all_states(*, now: dt.datetime | None = None) -> list[BreakerState]:
    members: set[str] = await get_redis().smembers(PROVIDERS_KEY)  # type: ignore[misc]  # redis-py's sync|async union
    providers = sorted(members or [])
    return [await state(str(provider), now=now) for provider in providers]


async def reset(
    session: AsyncSession, *, provider: str, reason: str, now: dt.datetime | None = None
) -> BreakerState:
    """An operator closes an open breaker by hand and starts a fresh sample: the window's counts
    are forgotten, so the next ``push_breaker_min_requests`` answers decide again (a provider
    that still fails reopens it, with a new alert). Needed because the breaker only closes on a
    full sample: after an outage of a provider that little traffic goes to (APNs sandbox, a few
    iOS devices), it would otherwise stay open, and its alert firing, for days.

    There is no "force open": the breaker never stops pushes, so opening it would only raise a
    false alarm; the operator's lever during a known outage is degraded mode itself. Audited in
    ``session``'s transaction (``push.breaker.reset``); the Redis change comes first, so a Redis
    failure leaves no audit row for a reset that did not happen."""
    moment = now or utcnow()
    members: set[str] = await get_redis().smembers(PROVIDERS_KEY)  # type: ignore[misc]  # redis-py's sync|async union
    if provider not in {str(member) for member in members or []}:
        raise NotFound("No breaker for this provider", code="breaker_not_found")
    before = await state(provider, now=moment)
    if not before.open:
        raise Conflict("This breaker is not open", code="breaker_not_open")
    pipe = get_redis().pipeline(transaction=True)
    pipe.delete(_open_key(provider))
    for bucket in _buckets(moment):
        pipe.delete(_bucket_key(provider, bucket))
    await pipe.execute()
    log.warning("push_breaker_reset", provider=provider, error_rate=round(before.error_rate, 4))
    audit.record(
        session,
        action="push.breaker.reset",
        object_type="push_provider",
        object_id=provider,
        details={
            "reason": reason,
            "opened_at": before.opened_at,
            "requests": before.requests,
            "errors": before.errors,
            "error_rate": f"{before.error_rate:.4f}",
        },
    )
    return await state(provider, now=moment)


async def _evaluate(current: BreakerState, now: dt.datetime) -> bool:
    settings = get_settings()
    provider = current.provider
    enough = current.requests >= settings.push_breaker_min_requests
    tripped = enough and current.error_rate >= settings.push_breaker_error_rate
    redis = get_redis()
    if tripped and not current.open:
        document = {"opened_at": now.isoformat(), "error_rate": round(current.error_rate, 4)}
        # SET NX: of several workers seeing the same burst, one raises the alert.
        if await redis.set(_open_key(provider), orjson.dumps(document).decode(), nx=True):
            await _alert(current, now)
            return True
    elif current.open and enough and not tripped and await redis.delete(_open_key(provider)):
        log.warning("push_breaker_closed", provider=provider, error_rate=round(current.error_rate, 4))
        await _audit("push.breaker.closed", current)
    return False


async def _alert(current: BreakerState, now: dt.datetime) -> None:
    BREAKER_ALERTS.labels(provider=current.provider).inc()
    log.error(
        "push_breaker_open",
        provider=current.provider,
        error_rate=round(current.error_rate, 4),
        requests=current.requests,
        errors=current.errors,
        action="consider POST /v1/sms/degraded-mode (docs/sms.md)",
    )
    await _audit("push.breaker.opened", current)


async def _audit(action: str, current: BreakerState) -> None:
    previous = current_context()
    set_context(RequestContext(actor_kind="system"))  # the breaker acts, not the batch's requester
    try:
        await audit.record_detached(
            action=action,
            object_type="push_provider",
            object_id=current.provider,
            outcome="failure" if action.endswith("opened") else "success",
            details={
                "requests": current.requests,
                "errors": current.errors,
                "error_rate": f"{current.error_rate:.4f}",
                "window_seconds": get_settings().push_breaker_window_seconds,
            },
        )
    finally:
        set_context(previous)

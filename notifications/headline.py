"""The headline figures of the whole service, for the operators' live view in the console: how
fast pushes are getting out, how many wait, how long the oldest has waited, the breakers and the
error rate, each with a level (``ok``, ``warn``, ``bad``; ``unknown`` when not measured).

Nothing here queries PostgreSQL. The backlog and the oldest due delivery are the snapshot the
``measure_figures`` cron publishes every 15 s (notifications/figures.py, one query for the whole
service); the delivery and error rates are the push breaker's per-provider answer counters in
Redis (notifications/breaker.py), over the last ``RATE_SECONDS``; the breakers are read from Redis
where they live. So a viewer costs a handful of Redis reads per refresh, whatever the tables hold.

The thresholds are the alert rules' (deploy/prometheus/alerts.yml), so the panel turns red when
an alert would fire: a breaker open; a high or emergency push due for over 2 minutes, a normal
one for over 10; an error rate at the breaker's threshold. Warnings come earlier: over 1,000 due
deliveries (ChuongDeliveryBacklogGrowing's floor), the oldest due past half its limit, an error
rate over 10 % (ChuongPushProviderErrors). A snapshot older than ``figures.FRESH_SECONDS`` shows
no backlog at all: zero measured ten minutes ago is not zero now.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Literal

from redis.exceptions import RedisError

from core.clock import utcnow
from core.config import get_settings
from core.logging import get_logger
from core.streams import StreamEvent
from notifications import breaker, figures

log = get_logger(__name__)

Level = Literal["ok", "warn", "bad", "unknown"]

RATE_SECONDS = 60
BACKLOG_WARN = 1000
# ChuongOldestDueDeliveryTooOld's limits, by priority.
OLDEST_DUE_LIMIT_SECONDS = {"emergency": 120.0, "high": 120.0, "normal": 600.0}
ERROR_RATE_WARN = 0.1
# The live view's cadence: the rates and the breakers move continuously; the backlog every 15 s.
EVERY_SECONDS = 5.0
# A stream ends after this; the browser reconnects, and the reconnection is authorised afresh.
MAX_STREAM_SECONDS = 300.0

_RANK: dict[Level, int] = {"unknown": 0, "ok": 1, "warn": 2, "bad": 3}


def worst(levels: list[Level]) -> Level:
    return max(levels, key=_RANK.__getitem__, default="ok")


@dataclass(frozen=True)
class BreakerLight:
    provider: str
    open: bool
    error_rate: float  # over the breaker's window
    level: Level


@dataclass(frozen=True)
class Headline:
    at: float  # unix seconds, when read
    measured_at: float | None  # when the cron last measured the backlog (None: never, or lost)
    fresh: bool  # the backlog figures below are current
    backlog: int | None  # due deliveries no worker holds, all priorities (None: not fresh)
    backlog_level: Level
    oldest_due_seconds: float | None  # the oldest of them, any priority (None: not fresh)
    oldest_due_priority: str | None  # whose wait is nearest its limit (None: nothing due)
    oldest_due_level: Level
    delivery_rate: float  # deliveries the providers accepted per second, last RATE_SECONDS
    error_rate: float | None  # errors among the providers' answers, last RATE_SECONDS (None: none)
    error_rate_level: Level
    answers: int  # the providers' answers behind the two rates
    breakers: list[BreakerLight]
    breaker_level: Level

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def _oldest_due(snapshot: figures.Figures) -> tuple[float, str | None, Level]:
    """The longest wait and the level of the priority closest to (or furthest past) its limit."""
    oldest = max((work.oldest_due_age_seconds for work in snapshot.due), default=0.0)
    nearest: tuple[float, str | None] = (0.0, None)
    for work in snapshot.due:
        if work.deliveries == 0 and work.oldest_due_age_seconds == 0:
            continue
        share = work.oldest_due_age_seconds / OLDEST_DUE_LIMIT_SECONDS.get(work.priority, 600.0)
        if nearest[1] is None or share > nearest[0]:
            nearest = (share, work.priority)
    share, priority = nearest
    level: Level = "bad" if share > 1 else "warn" if share > 0.5 else "ok"
    return oldest, priority, level


def _error_rate_level(rate: float | None) -> Level:
    if rate is None:
        return "ok"
    if rate >= get_settings().push_breaker_error_rate:
        return "bad"
    return "warn" if rate > ERROR_RATE_WARN else "ok"


async def read(*, now: dt.datetime | None = None) -> Headline:
    """The figures now. Redis down: every figure reads as unknown rather than as zero."""
    moment = now or utcnow()
    try:
        snapshot = await figures.load()
        recent = await breaker.recent_answers(seconds=RATE_SECONDS, now=moment)
        states = await breaker.all_states(now=moment)
    except (RedisError, OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("headline_unavailable", error=type(exc).__name__)
        return _unknown(moment)
    fresh = snapshot is not None and moment.timestamp() - snapshot.computed_at <= figures.FRESH_SECONDS
    backlog: int | None = None
    oldest: float | None = None
    priority: str | None = None
    backlog_level: Level = "unknown"
    oldest_level: Level = "unknown"
    if snapshot is not None and fresh:
        backlog = sum(work.deliveries for work in snapshot.due)
        backlog_level = "warn" if backlog > BACKLOG_WARN else "ok"
        oldest, priority, oldest_level = _oldest_due(snapshot)
    answers = sum(r.answers for r in recent)
    errors = sum(r.errors for r in recent)
    span = max((r.seconds for r in recent), default=float(RATE_SECONDS))
    error_rate = errors / answers if answers else None
    lights = [
        BreakerLight(state.provider, state.open, state.error_rate, "bad" if state.open else "ok")
        for state in states
    ]
    return Headline(
        at=moment.timestamp(),
        measured_at=snapshot.computed_at if snapshot is not None else None,
        fresh=fresh,
        backlog=backlog,
        backlog_level=backlog_level,
        oldest_due_seconds=oldest,
        oldest_due_priority=priority,
        oldest_due_level=oldest_level,
        delivery_rate=sum(r.accepted for r in recent) / span if span > 0 else 0.0,
        error_rate=error_rate,
        error_rate_level=_error_rate_level(error_rate),
        answers=answers,
        breakers=lights,
        breaker_level=worst([light.level for light in lights]),
    )


def _unknown(moment: dt.datetime) -> Headline:
    return Headline(
        at=moment.timestamp(),
        measured_at=None,
        fresh=False,
        backlog=None,
        backlog_level="unknown",
        oldest_due_seconds=None,
        oldest_due_priority=None,
        oldest_due_level="unknown",
        delivery_rate=0.0,
        error_rate=None,
        error_rate_level="unknown",
        answers=0,
        breakers=[],
        breaker_level="unknown",
    )


# Asked before each event: does the viewer's sign-in still hold (the transport knows how)?
StillAllowed = Callable[[], Awaitable[bool]]


async def stream(still_allowed: StillAllowed) -> AsyncGenerator[StreamEvent, None]:
    """``figures`` events every ``EVERY_SECONDS`` for at most ``MAX_STREAM_SECONDS``. The stream
    outlives the request that opened it; a revoked session must not: before each event after the
    first the viewer's credentials are checked again, and an ended session ends the stream with
    ``ended`` (the browser's reconnection then gets its 401)."""
    deadline = time.monotonic() + MAX_STREAM_SECONDS
    first = True
    while True:
        if not first and not await still_allowed():
            yield StreamEvent("ended", {"reason": "credentials_ended"})
            return
        first = False
        yield StreamEvent("figures", (await read()).to_json())
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        await asyncio.sleep(min(EVERY_SECONDS, remaining))

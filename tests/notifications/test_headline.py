"""The operators' headline figures (notifications/headline.py): the backlog and the oldest due
delivery from the cron's snapshot of real outbox rows, the delivery and error rates from the
breaker's answer counters in Redis, the breakers, each with the alert rules' levels; stale or
missing figures read as unknown, never as zero; the live stream is bounded and ends with the
viewer's sign-in."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

import pytest

from core import clock
from core.config import get_settings
from core.db import transaction
from core.redis import get_redis
from notifications import breaker, figures, headline
from notifications.backlog import DueWork
from notifications.outbox import ClaimedDelivery
from notifications.providers.base import Outcome, SendResult
from tests.notifications.conftest import register_devices
from tests.notifications.due_rows import due_notification, open_batch
from workers.figures_jobs import measure_figures

SECOND = dt.timedelta(seconds=1)


def _answers(provider: str, *, accepted: int = 0, retry: int = 0, failed: int = 0, deferred: int = 0):
    def delivery() -> ClaimedDelivery:
        return ClaimedDelivery(
            id=1,
            device_id=uuid.uuid4(),
            provider=provider,
            language="vi",
            attempts=1,
            token="t",
            apns_environment="production" if provider == "apns" else None,
        )

    return (
        [(delivery(), SendResult.accepted("m")) for _ in range(accepted)]
        + [(delivery(), SendResult(Outcome.RETRY, error_code="UNAVAILABLE")) for _ in range(retry)]
        + [(delivery(), SendResult(Outcome.FAILED, error_code="INVALID_ARGUMENT")) for _ in range(failed)]
        # Held back by the shared pacing: the provider never saw these.
        + [
            (delivery(), SendResult(Outcome.RETRY, error_code="rate_limited", attempted=False))
            for _ in range(deferred)
        ]
    )


async def _due_rows(now: dt.datetime) -> None:
    """A high push with 3 deliveries due (the oldest since 90 s), one sent and one due later; a
    normal push held by a worker (not backlog)."""
    devices = await register_devices([("fcm", f"ok-{uuid.uuid4().hex}", "vi") for _ in range(5)])
    async with transaction() as session:
        urgent = due_notification(priority="high", now=now)
        held = due_notification(priority="normal", now=now)
        session.add_all([urgent, held])
        await session.flush()
        await open_batch(
            session,
            urgent,
            devices,
            rows=[
                ("pending", now - 90 * SECOND),
                ("pending", now - 60 * SECOND),
                ("retrying", now - 30 * SECOND),
                ("sent", now - 90 * SECOND),
                ("retrying", now + 60 * SECOND),
            ],
        )
        await open_batch(
            session, held, devices, rows=[("pending", now - 500 * SECOND)], leased_until=now + 30 * SECOND
        )


async def test_the_headline_reads_the_crons_snapshot_and_the_breakers_counters(client):
    now = clock.utcnow()
    await _due_rows(now)
    await measure_figures({})  # the periodic job, as the cron runs it
    await breaker.record_outcomes(_answers("fcm", accepted=30, retry=8, failed=2, deferred=25), now=now)
    await breaker.record_outcomes(_answers("apns", accepted=20), now=now)

    figures_now = await headline.read(now=now)

    # The cron measured a moment after ``now`` (the clock runs).
    assert figures_now.fresh and figures_now.measured_at == pytest.approx(now.timestamp(), abs=5)
    assert figures_now.backlog == 3 and figures_now.backlog_level == "ok"
    # 90 s of a high push's 120 s limit: past half of it.
    assert figures_now.oldest_due_seconds == pytest.approx(90.0, abs=5)
    assert figures_now.oldest_due_priority == "high"
    assert figures_now.oldest_due_level == "warn"
    # 50 accepted over the buckets read (the current one so far and the five before it); the 25
    # deferrals never reached a provider: neither answers nor errors.
    assert figures_now.answers == 60
    assert figures_now.error_rate == pytest.approx(10 / 60) and figures_now.error_rate_level == "warn"
    span = now.timestamp() - (int(now.timestamp()) // breaker.BUCKET_SECONDS - 5) * breaker.BUCKET_SECONDS
    assert figures_now.delivery_rate == pytest.approx(50 / span)
    assert [(b.provider, b.open, b.level) for b in figures_now.breakers] == [
        ("apns:production", False, "ok"),
        ("fcm", False, "ok"),
    ]
    assert figures_now.breaker_level == "ok"


async def test_answers_older_than_the_last_minute_leave_the_rates(client):
    then = clock.utcnow()
    await breaker.record_outcomes(_answers("fcm", accepted=40, retry=40), now=then)
    later = await headline.read(now=then + 75 * SECOND)
    assert (later.answers, later.delivery_rate, later.error_rate) == (0, 0.0, None)
    assert later.error_rate_level == "ok"


async def test_an_open_breaker_and_a_late_push_read_as_critical(client, monkeypatch):
    monkeypatch.setattr(get_settings(), "push_breaker_min_requests", 10)
    now = clock.utcnow()
    opened = await breaker.record_outcomes(_answers("fcm", accepted=2, retry=18), now=now)
    assert opened == ["fcm"]
    # A normal push due for 11 minutes (limit 10), as the cron would publish it.
    snapshot = figures.Figures(
        computed_at=now.timestamp(),
        due=[
            DueWork("normal", deliveries=1500, batches=3, oldest_due_age_seconds=660.0),
            DueWork("high", deliveries=0, batches=0, oldest_due_age_seconds=0.0),
            DueWork("emergency", deliveries=0, batches=0, oldest_due_age_seconds=0.0),
        ],
        fanouts_running=0,
        fanout_lag_seconds=0.0,
        maintenance=[],
    )
    await get_redis().set(figures.KEY, snapshot.to_json())

    figures_now = await headline.read(now=now)

    assert [(b.provider, b.open, b.level) for b in figures_now.breakers] == [("fcm", True, "bad")]
    assert figures_now.breaker_level == "bad"
    assert figures_now.error_rate == pytest.approx(0.9) and figures_now.error_rate_level == "bad"
    assert (figures_now.backlog, figures_now.backlog_level) == (1500, "warn")
    assert (figures_now.oldest_due_seconds, figures_now.oldest_due_priority) == (660.0, "normal")
    assert figures_now.oldest_due_level == "bad"


async def test_a_stale_or_missing_snapshot_shows_no_backlog_rather_than_zero(client):
    now = clock.utcnow()
    missing = await headline.read(now=now)
    assert (missing.measured_at, missing.fresh, missing.backlog, missing.backlog_level) == (
        None,
        False,
        None,
        "unknown",
    )
    await _due_rows(now)
    await measure_figures({})
    later = await headline.read(now=now + (figures.FRESH_SECONDS + 10) * SECOND)
    assert later.measured_at == pytest.approx(now.timestamp(), abs=5) and not later.fresh
    assert (later.backlog, later.oldest_due_seconds, later.oldest_due_level) == (None, None, "unknown")


async def test_the_stream_sends_figures_until_the_sign_in_ends(client, monkeypatch):
    monkeypatch.setattr(headline, "EVERY_SECONDS", 0.05)
    checks = iter([True, True, False])

    async def still_allowed() -> bool:
        return next(checks)

    events = [event async for event in headline.stream(still_allowed)]
    assert [event.name for event in events] == ["figures", "figures", "figures", "ended"]
    assert events[-1].data == {"reason": "credentials_ended"}
    assert set(events[0].data) >= {"backlog", "oldest_due_seconds", "delivery_rate", "error_rate", "breakers"}


async def test_the_stream_ends_by_itself_after_its_bound(client, monkeypatch):
    monkeypatch.setattr(headline, "EVERY_SECONDS", 0.1)
    monkeypatch.setattr(headline, "MAX_STREAM_SECONDS", 0.35)

    async def always() -> bool:
        return True

    # Nobody ends it: it ends itself (the browser reconnects, authorised afresh).
    events = await asyncio.wait_for(_collect(headline.stream(always)), timeout=5)
    names = [event.name for event in events]
    # At least the first figures; how many more fit in 0.35 s depends on the machine's load.
    assert set(names) == {"figures"} and 1 <= len(names) <= 6


async def _collect(stream):  # type: ignore[no-untyped-def]
    return [event async for event in stream]

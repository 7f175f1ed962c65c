"""Provider outages (issue 18, scenario 4): every request answered 503 UNAVAILABLE for 20 s, and
a storm of 429s with Retry-After. Deliveries retry on the ladder of docs/delivery.md "Retries"
(a provider's Retry-After a floor), none fails because of a transient outage shorter than the
TTL, and every one ends sent once the provider is back."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from notifications.outbox import MAX_ATTEMPTS, RETRY_BASE_SECONDS
from tests.notifications.fault_checks import (
    assert_recovered,
    recovery,
    requests_per_token,
    run_broadcast_through,
)

DEVICES = 4_000
OUTAGE_SECONDS = 20.0
STORM_SECONDS = 10.0
RETRY_AFTER_SECONDS = 8
# Between the emulator's clock reading a request and the worker's reading the answer.
SLACK_SECONDS = 0.3


def timeline(records) -> list[tuple[int, float]]:
    """A device's requests as (status, seconds after its first), for a failure's message."""
    return [(r.status, round(r.received_at - records[0].received_at, 3)) for r in records]


def earliest_retry(attempts: int) -> float:
    """The shortest wait the ladder allows after `attempts` attempts (the lower half of each
    interval is never drawn)."""
    return RETRY_BASE_SECONDS * 2 ** (attempts - 1) / 2


@pytest.mark.slow
async def test_provider_outage_shorter_than_the_ttl_fails_nothing(
    client, database_url, owner_engine, emulated_settings, emulator
):
    async def outage() -> None:
        emulator.faults.update({"outage": True})
        await asyncio.sleep(OUTAGE_SECONDS)
        emulator.faults.update({"outage": False})

    notification_id, recovered = await run_broadcast_through(
        client, database_url, owner_engine, emulator, outage, devices=DEVICES
    )
    result = await recovery(owner_engine, emulator, notification_id, devices=DEVICES)
    per_token = requests_per_token(emulator)
    refused = {token: sum(r.status == 503 for r in records) for token, records in per_token.items()}
    hit = sum(1 for n in refused.values() if n)
    print(
        f"\n4 provider outage {OUTAGE_SECONDS:.0f} s (503 UNAVAILABLE): {hit} devices refused at least "
        f"once, {sum(refused.values())} refusals, at most {max(refused.values())} for one device, "
        f"finished {recovered:.1f} s after the outage, {result.line()}"
    )
    assert hit >= DEVICES // 4, "the outage must hit the broadcast in the middle"
    assert_recovered(result, max_duplicates=0)
    assert result.max_attempts < MAX_ATTEMPTS
    for token, records in per_token.items():
        for attempt, (before, after) in enumerate(itertools.pairwise(records), start=1):
            assert before.status == 503, (token, timeline(records))  # one retry per refusal
            gap = after.received_at - before.received_at
            assert gap >= earliest_retry(attempt) - SLACK_SECONDS, (token, attempt, gap)


@pytest.mark.slow
async def test_429_storm_honours_retry_after_then_finishes(
    client, database_url, owner_engine, emulated_settings, emulator
):
    async def storm() -> None:
        emulator.faults.update(
            {"error_rate": 1.0, "error_kind": "quota", "retry_after_s": RETRY_AFTER_SECONDS}
        )
        await asyncio.sleep(STORM_SECONDS)
        emulator.faults.update({"error_rate": 0.0})

    notification_id, recovered = await run_broadcast_through(
        client, database_url, owner_engine, emulator, storm, devices=DEVICES
    )
    result = await recovery(owner_engine, emulator, notification_id, devices=DEVICES)
    per_token = requests_per_token(emulator)
    throttled = {token: sum(r.status == 429 for r in records) for token, records in per_token.items()}
    waits: dict[str, list[float]] = {"fcm": [], "apns": []}
    for token, records in per_token.items():
        for attempt, (before, after) in enumerate(itertools.pairwise(records), start=1):
            assert before.status == 429, (token, timeline(records))
            waits[before.provider].append(after.received_at - before.received_at)
            # FCM's Retry-After reaches the outbox: no retry of a device before it. aioapns does
            # not hand response headers over (and Apple documents no Retry-After on 429), so an
            # APNs retry follows the ladder alone.
            floor = RETRY_AFTER_SECONDS if before.provider == "fcm" else earliest_retry(attempt)
            assert after.received_at - before.received_at >= floor - SLACK_SECONDS, (token, attempt)
    shortest = {provider: f"{min(gaps):.1f} s" if gaps else "-" for provider, gaps in waits.items()}
    print(
        f"\n4 429 storm {STORM_SECONDS:.0f} s (Retry-After {RETRY_AFTER_SECONDS} s): "
        f"{sum(1 for n in throttled.values() if n)} devices throttled, {sum(throttled.values())} 429s, "
        f"shortest wait before a retry {shortest}, finished {recovered:.1f} s after the storm, "
        f"{result.line()}"
    )
    assert waits["fcm"] and waits["apns"], "the storm must hit both providers mid-broadcast"
    assert_recovered(result, max_duplicates=0)
    assert result.max_attempts < MAX_ATTEMPTS

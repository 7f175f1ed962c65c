"""A worker's wall clock stepped forward and back in the middle of a broadcast (issue 18, scenario
7), while the API, PostgreSQL, Redis, the emulator and a second worker keep real time.

Worker B runs under libfaketime (tests/support/stepped_clock.py): its wall clock jumps 10 minutes
ahead, then 20 minutes back (10 minutes behind), then back to the true time; its monotonic clock
runs on, as it does when NTP or an operator steps a real clock. Worker A keeps real time, so a
lease taken by one is judged by the other. The broadcast is slowed down enough to last through
the steps: either by the shared send budget (the pacing windows matter) or by a slow provider with
few requests in flight and no pacing (leases and retries alone). A few requests are refused
(503) so that retries are scheduled while the clock is off. Checked: nothing lost, no duplicate
(no worker dies, so no lease may be taken from a live holder), no retry sooner than the ladder
allows, no batch left open, counters equal to the rows, both workers still running.
"""

from __future__ import annotations

import asyncio
import itertools

import pytest

from tests.notifications.fault_checks import (
    assert_recovered,
    recovery,
    requests_per_token,
    run_broadcast_through,
)
from tests.notifications.test_provider_outage import SLACK_SECONDS, earliest_retry
from tests.notifications.test_resilience import start_worker, stop
from tests.support.stepped_clock import SteppedClock

DEVICES = 6_000
STEP_SECONDS = 600
HOLD_SECONDS = 8.0
ERROR_RATE = 0.03
# Both hold both workers to about 200 FCM and 100 APNs pushes a second: the broadcast lasts
# about 20 s, through the steps. (worker environment, emulator faults)
SETTINGS: dict[str, tuple[dict[str, str], dict[str, object]]] = {
    "shared budget": ({"CHUONG_FCM_QUOTA_PER_MINUTE": "12000", "CHUONG_APNS_PACE_PER_SECOND": "100"}, {}),
    "slow provider": (
        {
            "CHUONG_PACING_ENABLED": "false",
            "CHUONG_FCM_MAX_IN_FLIGHT": "20",
            "CHUONG_APNS_MAX_IN_FLIGHT": "10",
        },
        {"latency_ms": 200},
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("held_by", SETTINGS)
async def test_worker_clock_stepped_forward_and_back_loses_and_repeats_nothing(
    held_by, client, database_url, owner_engine, emulated_settings, emulator, tmp_path, monkeypatch
):
    environment, faults = SETTINGS[held_by]
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    clock = SteppedClock(tmp_path)
    with monkeypatch.context() as stepped:
        for name, value in clock.env().items():
            stepped.setenv(name, value)
        stepped_worker = start_worker(database_url, emulator)
    emulator.faults.update({"error_rate": ERROR_RATE, "error_kind": "unavailable", **faults})
    steps: list[str] = []

    async def step_forward_then_back() -> None:
        for offset in (STEP_SECONDS, -STEP_SECONDS, 0):
            assert stepped_worker.poll() is None, "the stepped worker must outlive each step"
            clock.step_to(offset)
            steps.append(f"{offset:+d} s")
            if offset:
                await asyncio.sleep(HOLD_SECONDS)

    try:
        notification_id, recovered = await run_broadcast_through(
            client,
            database_url,
            owner_engine,
            emulator,
            step_forward_then_back,
            devices=DEVICES,
            sent_before=500,
        )
        assert stepped_worker.poll() is None, "the stepped worker must outlive the steps"
    finally:
        emulator.faults.reset()
        stop(stepped_worker)

    result = await recovery(owner_engine, emulator, notification_id, devices=DEVICES)
    per_token = requests_per_token(emulator)
    early: list[tuple[str, int, float]] = []
    gaps: list[float] = []
    for token, records in per_token.items():
        for attempt, (before, after) in enumerate(itertools.pairwise(records), start=1):
            gap = after.received_at - before.received_at
            gaps.append(gap)
            if gap < earliest_retry(attempt) - SLACK_SECONDS:
                early.append((token, attempt, round(gap, 2)))
    print(
        f"\n7 ({held_by}) worker clock stepped {' then '.join(steps)} ({HOLD_SECONDS:.0f} s each) "
        f"beside a worker on real time: {len(gaps)} retries, shortest wait {min(gaps, default=0):.1f} s, "
        f"{len(early)} sooner than the ladder allows, finished {recovered:.1f} s after the last step, "
        f"{result.line()}"
    )
    assert gaps, "some requests must have been refused and retried"
    assert not early, early[:10]
    assert_recovered(result, max_duplicates=0)

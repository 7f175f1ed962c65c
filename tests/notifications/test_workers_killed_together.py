"""Two of three workers killed together with SIGKILL in the middle of a broadcast (issue 18,
scenario 1b): the survivor, with the reconciler, finishes the notification once the killed
workers' leases end; nothing is lost, and only the batches the dead held can go out twice."""

from __future__ import annotations

import signal
import time

import pytest

from tests.notifications.fault_checks import assert_recovered, recovery
from tests.notifications.helpers import broadcast, central_sender
from tests.notifications.test_resilience import (
    PER_WORKER_BOUND,
    counts,
    insert_devices,
    start_worker,
    stop,
    wait_for,
)

DEVICES = 6_000
KILLED = 2


@pytest.mark.slow
async def test_two_of_three_workers_killed_together_lose_nothing(
    client, database_url, owner_engine, emulated_settings, emulator
):
    await insert_devices(owner_engine, DEVICES)
    headers = await central_sender(client)
    notification_id = await broadcast(client, headers)
    workers = [start_worker(database_url, emulator) for _ in range(3)]
    try:

        async def some_sent() -> bool:
            return (await counts(owner_engine, notification_id)).get("sent", 0) >= 1000

        await wait_for(some_sent, timeout=120, what="some pushes to go out")
        for worker in workers[:KILLED]:
            worker.send_signal(signal.SIGKILL)
        for worker in workers[:KILLED]:
            worker.wait(timeout=10)
        killed_at = time.monotonic()
        midway = await counts(owner_engine, notification_id)
        assert midway["notification"] != "completed", midway

        async def done() -> bool:
            return (await counts(owner_engine, notification_id))["notification"] == "completed"

        await wait_for(done, timeout=120, what="the surviving worker to finish the notification")
        recovered = time.monotonic() - killed_at
        assert workers[KILLED].poll() is None, "the survivor must still be running"
    finally:
        for worker in workers:
            stop(worker)

    result = await recovery(owner_engine, emulator, notification_id, devices=DEVICES)
    print(
        f"\n1b two of three workers SIGKILLed: {midway.get('sent', 0)} sent at the kill, "
        f"finished {recovered:.1f} s after it, {result.line()}"
    )
    assert_recovered(result, max_duplicates=KILLED * PER_WORKER_BOUND)

"""SIGTERM while a worker is sending (every deploy, every scale-down): the worker writes what its
chunks on the wire were answered, runs its shutdown and exits 0 without a traceback; a new worker
sends the rest, and no device gets its push twice (workers/arq_worker.py ``PollingWorker.close``,
notifications/delivery.py ``_drain``, notifications/first_page_lane.py ``stop_announced``)."""

from __future__ import annotations

import asyncio
import signal

import pytest

from tests.notifications.fault_checks import assert_recovered, recovery
from tests.notifications.helpers import broadcast, central_sender
from tests.notifications.test_resilience import (
    counts,
    insert_devices,
    start_worker,
    stop,
    wait_for,
    worker_log,
)

DEVICES = 3_000
LATENCY_MS = 400  # chunks are on the wire when the signal comes


@pytest.mark.slow
async def test_sigterm_mid_broadcast_drains_shuts_down_cleanly_and_sends_nothing_twice(
    client, database_url, owner_engine, emulated_settings, emulator
):
    await insert_devices(owner_engine, DEVICES)
    emulator.faults.update({"latency_ms": LATENCY_MS})
    notification_id = await broadcast(client, await central_sender(client))
    first = start_worker(database_url, emulator)
    try:

        async def flowing() -> bool:
            return (await counts(owner_engine, notification_id)).get("sent", 0) >= 250

        await wait_for(flowing, timeout=120, what="pushes to go out")
        first.send_signal(signal.SIGTERM)
        # Waited for in a thread: the emulator answers from this event loop.
        status = await asyncio.to_thread(first.wait, 60)
        log = worker_log(first)
    finally:
        stop(first)
    assert "Traceback" not in log, log[-4000:]
    assert status == 0, log[-4000:]
    assert (await counts(owner_engine, notification_id)).get("sent", 0) < DEVICES  # stopped mid-way

    second = start_worker(database_url, emulator)
    try:

        async def done() -> bool:
            return (await counts(owner_engine, notification_id))["notification"] == "completed"

        await wait_for(done, timeout=180, what="the second worker to finish the broadcast")
    finally:
        stop(second)
    result = await recovery(owner_engine, emulator, notification_id, devices=DEVICES)
    print(f"\nSIGTERM mid-broadcast: {result.line()}")
    assert_recovered(result, max_duplicates=0)

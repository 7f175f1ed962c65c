"""A send job cancelled while its chunks are at the provider (arq's job timeout, which cancels
the job with ``asyncio.wait_for``, or a shutdown) writes what they were answered and lets the
batch go: nothing it sent is sent again when the lease ends, and what it never started is due at
once. Found by the soak (bench/soak.py): around a Redis restart, job timeouts left answered pushes
unwritten and 519 of one broadcast were sent twice."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter

import pytest

from tests.notifications.conftest import register_devices
from tests.notifications.helpers import broadcast, central_sender, load
from workers.delivery_jobs import fan_out, send_batch

DEVICES = 12  # one batch, four chunks of three: two at the provider when the timeout strikes
SLOW_MS = 1200.0


async def test_a_job_timeout_writes_what_is_on_the_wire_and_sends_nothing_twice(client, emulator, worker_ctx):
    emulator.faults.update({"slow_latency_ms": SLOW_MS})
    tokens = [f"slow-{uuid.uuid4().hex}" for _ in range(DEVICES)]
    await register_devices([("fcm", token, "vi") for token in tokens])
    nid = uuid.UUID(await broadcast(client, await central_sender(client)))
    await fan_out(worker_ctx, str(nid))

    started = time.monotonic()
    with pytest.raises(TimeoutError):
        # What arq does to a job past its timeout, here while the first two chunks are on the wire.
        await asyncio.wait_for(send_batch(worker_ctx, str(nid), None), 0.4)
    drained_in = time.monotonic() - started

    _, deliveries = await load(nid)
    statuses = Counter(d.status for d in deliveries)
    # The two chunks on the wire were answered and written; the two never started are due again
    # now, not after the lease (their batch was let go).
    assert statuses == {"sent": 6, "pending": 6}, statuses
    assert drained_in < SLOW_MS / 1000 + 5

    # No lease to wait out (90 s): the next job claims the rest at once.
    await send_batch(worker_ctx, str(nid), None)
    notification, deliveries = await load(nid)
    assert notification.status == "completed" and notification.sent == DEVICES
    # Each device reached exactly once at the provider.
    per_token = Counter(record.token for record in emulator.log.find() if record.token in set(tokens))
    assert per_token == dict.fromkeys(tokens, 1), per_token

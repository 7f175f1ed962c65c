"""Urgent before bulk (issue 16): a push created while a broadcast is sending goes out before the
broadcast's remaining batches, not behind the send jobs its fan-out queued first.

Two real `chuong worker` processes and the emulator, every answer 150 ms late so that a batch takes
several round trips. The property is checked on the order of the emulator's requests, not on a
time: after the urgent push's page was written, each worker may still start the one batch it was
claiming at that moment (a worker starts one batch at a time, `send_batches_in_flight`), but no
further batch of the broadcast may start before the urgent push's first request.
"""

from __future__ import annotations

import pytest
from sqlalchemy import text

from core.config import get_settings
from tests.notifications.fault_checks import recovery
from tests.notifications.helpers import broadcast, central_sender, notification_body, release_approved
from tests.notifications.test_resilience import counts, insert_devices, start_worker, stop, wait_for

DEVICES = 6_000  # 12 batches
WORKERS = 2
URGENT_DEVICES = 3


async def _urgent_devices(owner_engine) -> list[str]:
    async with owner_engine.begin() as conn:
        rows = await conn.execute(
            text(
                "INSERT INTO devices (id, app, platform, provider, token, locale, topics) "
                "SELECT gen_random_uuid(), 'portal', 'android', 'fcm', 'urgent-fcm-' || i, 'vi', '{}' "
                "FROM generate_series(1, :n) AS i RETURNING id"
            ),
            {"n": URGENT_DEVICES},
        )
        return [str(row.id) for row in rows]


async def _first_request_per_batch(owner_engine, emulator, notification_id: str) -> dict[int, float]:
    """Each batch of the notification: when the emulator got its first request."""
    async with owner_engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT b.id AS batch, dev.token FROM delivery_batches AS b "
                    "JOIN deliveries AS d ON d.notification_id = b.notification_id "
                    " AND d.id BETWEEN b.low_id AND b.high_id "
                    "JOIN devices AS dev ON dev.id = d.device_id WHERE b.notification_id = :id"
                ),
                {"id": notification_id},
            )
        ).all()
    first_seen: dict[str, float] = {}
    for record in emulator.log.find(limit=len(emulator.log) + 1):
        first_seen.setdefault(record.token, record.received_at)
    batches: dict[int, float] = {}
    for row in rows:
        seen = first_seen[row.token]
        batches[row.batch] = min(batches.get(row.batch, seen), seen)
    return batches


@pytest.mark.slow
async def test_a_new_push_goes_out_before_the_remaining_batches_of_a_running_broadcast(
    client, database_url, owner_engine, emulated_settings, emulator
):
    await insert_devices(owner_engine, DEVICES)
    urgent_devices = await _urgent_devices(owner_engine)
    headers = await central_sender(client)
    # The broadcast reaches the urgent push's devices too; they are pushed first.
    emulator.faults.update({"latency_ms": 150})
    big = await broadcast(client, headers)
    workers = [start_worker(database_url, emulator) for _ in range(WORKERS)]
    try:

        async def first_batch_recorded() -> bool:
            return (await counts(owner_engine, big)).get("sent", 0) >= 500

        await wait_for(first_batch_recorded, timeout=120, what="the broadcast's first batch")
        urgent = await release_approved(
            client,
            headers,
            notification_body(audience={"devices": urgent_devices}, data={"article_id": "urgent"}),
        )

        async def both_done() -> bool:
            for nid in (big, urgent):
                if (await counts(owner_engine, nid))["notification"] != "completed":
                    return False
            return True

        await wait_for(both_done, timeout=240, what="both notifications to complete")
    finally:
        for worker in workers:
            stop(worker)

    async with owner_engine.connect() as conn:
        written = (
            await conn.execute(
                text(
                    "SELECT extract(epoch FROM created_at) FROM delivery_batches WHERE notification_id = :id"
                ),
                {"id": urgent},
            )
        ).scalar_one()
    urgent_tokens = {f"urgent-fcm-{i}" for i in range(1, URGENT_DEVICES + 1)}
    urgent_first = min(
        record.received_at
        for record in emulator.log.find(limit=len(emulator.log) + 1)
        if record.token in urgent_tokens and record.payload and urgent.encode() in record.payload
    )
    batches = await _first_request_per_batch(owner_engine, emulator, big)
    in_between = sorted(at for at in batches.values() if float(written) < at < urgent_first)
    after = [at for at in batches.values() if at > urgent_first]
    print(
        f"\nurgent page written → first request {(urgent_first - float(written)) * 1000:.0f} ms; "
        f"broadcast batches started meanwhile {len(in_between)}, after it {len(after)} of {len(batches)}"
    )
    # The urgent push arrived while most of the broadcast was still to start...
    assert len(after) >= 3, (len(after), len(batches))
    # ...and went ahead of all of it but the batch each worker was claiming when it was written.
    assert len(in_between) <= WORKERS * get_settings().send_batches_in_flight, in_between
    # Nothing lost on the way. (Duplicates are the fault tests' subject: on a loaded machine the
    # 15 s test lease can run out under a batch, and the bound they check is per killed worker.)
    result = await recovery(owner_engine, emulator, big, devices=DEVICES + URGENT_DEVICES)
    assert result.final["notification"] == "completed" and result.lost == 0, result.line()
    assert result.open_batches == 0
    assert result.counters == (DEVICES + URGENT_DEVICES, DEVICES + URGENT_DEVICES, 0, 0), result.line()

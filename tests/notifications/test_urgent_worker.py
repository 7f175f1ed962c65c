"""The urgent worker (``chuong worker --urgent-only``, workers/roles.py; issue 16 item 7): a
process that takes only latency-critical work, so that a new push never waits in an event loop
saturated by a broadcast. Real workers and the emulator.

* alone, it sends new pushes and none of a broadcast's batches (not even a page it did not write);
* beside an ordinary worker whose event loop is stopped outright (SIGSTOP: the limit of a loop
  saturated by a broadcast), a new push still goes out; once the ordinary worker runs again the
  broadcast completes with nothing lost;
* it is optional: with its health record left behind (a worker that died), an ordinary worker
  sends the new push itself once the hand-over has passed.
"""

from __future__ import annotations

import asyncio
import signal
import uuid

import pytest
from redis.asyncio import Redis
from sqlalchemy import text

from core.config import get_settings
from core.jobs import HIGH_QUEUE
from notifications import fanout, urgent_role
from tests.notifications.fault_checks import recovery
from tests.notifications.helpers import broadcast, central_sender, notification_body, release_approved
from tests.notifications.test_resilience import counts, insert_devices, start_worker, stop, wait_for
from workers.roles import urgent_health_key

URGENT_DEVICES = 3


async def _new_devices(owner_engine) -> dict[str, str]:
    """Three more portal devices: their ids and tokens."""
    tag = uuid.uuid4().hex[:8]
    async with owner_engine.begin() as conn:
        rows = await conn.execute(
            text(
                "INSERT INTO devices (id, app, platform, provider, token, locale, topics) "
                "SELECT gen_random_uuid(), 'portal', 'android', 'fcm', :tag || '-urgent-' || i, 'vi', '{}' "
                "FROM generate_series(1, :n) AS i RETURNING id, token"
            ),
            {"n": URGENT_DEVICES, "tag": tag},
        )
        return {str(row.id): row.token for row in rows}


async def _urgent_push(client, headers, devices: dict[str, str]) -> tuple[str, set[str]]:
    """A push to ``devices``. Returns it and their tokens."""
    nid = await release_approved(
        client, headers, notification_body(audience={"devices": list(devices)}, data={"article_id": "urgent"})
    )
    return nid, set(devices.values())


async def _completed(owner_engine, nid: str) -> bool:
    return (await counts(owner_engine, nid))["notification"] == "completed"


async def _page_written_at(owner_engine, nid: str) -> float:
    async with owner_engine.connect() as conn:
        return float(
            (
                await conn.execute(
                    text(
                        "SELECT extract(epoch FROM min(created_at)) FROM delivery_batches "
                        "WHERE notification_id = :id"
                    ),
                    {"id": nid},
                )
            ).scalar_one()
        )


@pytest.mark.slow
async def test_an_urgent_worker_sends_new_pushes_and_no_batch_of_a_broadcast(
    client, database_url, owner_engine, emulated_settings, emulator
):
    devices = 2_000  # four pages
    await insert_devices(owner_engine, devices)
    headers = await central_sender(client)
    big = await broadcast(client, headers)
    # The whole broadcast fanned out before the urgent worker starts: its four pages are due and
    # their send jobs queued (the first page's `first:` job among them).
    await fanout.fan_out(notification_id=uuid.UUID(big))
    urgent_worker = start_worker(database_url, emulator, "--urgent-only")
    ordinary = None
    try:
        # Devices the broadcast does not reach (registered after its fan-out).
        urgent, tokens = await _urgent_push(client, headers, await _new_devices(owner_engine))
        await wait_for(lambda: _completed(owner_engine, urgent), timeout=60, what="the new push")
        assert all(emulator.log.find(token=token) for token in tokens)
        await asyncio.sleep(2.0)  # time for anything else to (wrongly) start
        assert (await counts(owner_engine, big)).get("sent", 0) == 0
        async with owner_engine.connect() as conn:
            leased = (
                await conn.execute(
                    text(
                        "SELECT count(*) FROM delivery_batches WHERE notification_id = :id "
                        "AND (leased_until IS NOT NULL OR status <> 'open')"
                    ),
                    {"id": big},
                )
            ).scalar_one()
        assert leased == 0

        # The broadcast is the ordinary workers' work: one starts, and it all goes out.
        ordinary = start_worker(database_url, emulator)
        await wait_for(lambda: _completed(owner_engine, big), timeout=120, what="the broadcast")
    finally:
        for worker in (urgent_worker, ordinary):
            if worker is not None:
                stop(worker)
    result = await recovery(owner_engine, emulator, big, devices=devices + URGENT_DEVICES)
    assert result.lost == 0 and result.open_batches == 0, result.line()
    assert result.counters == (devices, devices, 0, 0), result.line()


@pytest.mark.slow
async def test_a_new_push_goes_out_while_the_ordinary_worker_is_stuck_in_a_broadcast(
    client, database_url, owner_engine, emulated_settings, emulator
):
    devices = 6_000
    await insert_devices(owner_engine, devices)
    urgent_devices = await _new_devices(owner_engine)  # the broadcast reaches them too
    devices += URGENT_DEVICES
    headers = await central_sender(client)
    emulator.faults.update({"latency_ms": 150})
    big = await broadcast(client, headers)
    ordinary = start_worker(database_url, emulator)
    urgent_worker = start_worker(database_url, emulator, "--urgent-only")
    stopped = False
    try:

        async def sending() -> bool:
            return (await counts(owner_engine, big)).get("sent", 0) >= 500

        await wait_for(sending, timeout=120, what="the broadcast's first batch")
        ordinary.send_signal(signal.SIGSTOP)
        stopped = True
        await asyncio.sleep(1.0)  # a statement it had sent is still carried out by PostgreSQL
        sent_while_stopped = (await counts(owner_engine, big)).get("sent", 0)
        urgent, _ = await _urgent_push(client, headers, urgent_devices)
        # On the code before the urgent worker this waits until the ordinary worker runs again.
        await wait_for(lambda: _completed(owner_engine, urgent), timeout=30, what="the new push")
        assert (await counts(owner_engine, big)).get("sent", 0) == sent_while_stopped
        ordinary.send_signal(signal.SIGCONT)
        stopped = False
        await wait_for(lambda: _completed(owner_engine, big), timeout=240, what="the broadcast")
    finally:
        if stopped:
            ordinary.send_signal(signal.SIGCONT)
        for worker in (ordinary, urgent_worker):
            stop(worker)
    result = await recovery(owner_engine, emulator, big, devices=devices)
    assert result.lost == 0 and result.open_batches == 0, result.line()
    assert result.counters == (devices, devices, 0, 0), result.line()


@pytest.mark.slow
async def test_without_a_live_urgent_worker_the_ordinary_worker_sends_first_pages_after_the_hand_over(
    client, database_url, owner_engine, emulated_settings, emulator
):
    """An urgent worker that died leaves its health record for up to two seconds (or a stuck one
    keeps it): the ordinary workers wait the hand-over for it, then send the page themselves.
    (With no record at all nothing is held: every other test of real workers.)"""
    redis = Redis.from_url(get_settings().redis_url)
    ordinary = start_worker(database_url, emulator)
    try:
        await redis.set(urgent_health_key(HIGH_QUEUE), b"a worker that died", px=120_000)
        await asyncio.sleep(1.5)  # the ordinary worker reads it at its next polls
        headers = await central_sender(client)
        urgent, tokens = await _urgent_push(client, headers, await _new_devices(owner_engine))
        await wait_for(lambda: _completed(owner_engine, urgent), timeout=60, what="the new push")
        written = await _page_written_at(owner_engine, urgent)
        first = min(record.received_at for token in tokens for record in emulator.log.find(token=token))
        # Left to the urgent worker for the hand-over, not longer than needed after it.
        assert first - written >= urgent_role.HANDOVER_SECONDS * 0.9, first - written
    finally:
        await redis.delete(urgent_health_key(HIGH_QUEUE))
        await redis.aclose()
        stop(ordinary)

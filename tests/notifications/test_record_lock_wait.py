"""A chunk's write that meets a lock wait past the worker's lock timeout is written again, not left
for the lease: the notification's row held for a while by someone else (a long fan-out page, an
admin's cancel, a DBA's session) must not send any push twice.

Before core/db_retry.py, the write failed on ``lock_not_available``, the send job failed with the
batch still leased, and once the lease ran out the batch's answered rows went out again (a fresh-
clone CI run saw a device get its push twice after a 429 storm)."""

from __future__ import annotations

import asyncio
import time

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from core.db_retry import rewrite_while_transient
from tests.notifications.fault_checks import assert_recovered, recovery, run_broadcast_through

DEVICES = 4_000
LATENCY_MS = 100  # the broadcast takes seconds, so chunks are answered while the row is held
HOLD_SECONDS = 3.0
WORKER_LOCK_TIMEOUT_MS = 300  # the worker's writes give up on the lock ten times over


@pytest.mark.slow
async def test_record_blocked_by_a_row_lock_is_written_again_not_sent_again(
    client, database_url, owner_engine, emulated_settings, emulator, monkeypatch
):
    monkeypatch.setenv("CHUONG_DB_LOCK_TIMEOUT_MS", str(WORKER_LOCK_TIMEOUT_MS))  # the worker's
    emulator.faults.update({"latency_ms": LATENCY_MS})
    held: list[float] = []
    logs: list[str] = []

    async def hold_the_notification_row() -> None:
        async with owner_engine.begin() as conn:
            await conn.execute(text("SELECT id FROM notifications FOR UPDATE"))
            held.append(time.time())
            await asyncio.sleep(HOLD_SECONDS)
            held.append(time.time())

    notification_id, _ = await run_broadcast_through(
        client,
        database_url,
        owner_engine,
        emulator,
        hold_the_notification_row,
        devices=DEVICES,
        sent_before=250,
        logs=logs,
    )
    result = await recovery(owner_engine, emulator, notification_id, devices=DEVICES)
    records = emulator.log.find(limit=len(emulator.log) + 1)
    answered_while_held = sum(1 for record in records if held[0] <= record.received_at <= held[1])
    print(f"\nrow held {HOLD_SECONDS} s: {answered_while_held} pushes answered meanwhile; {result.line()}")
    # Chunks were answered while the row was held, and their writes met the lock and were tried
    # again (how many were answered depends on the machine's load), or the test proves nothing.
    assert answered_while_held > 0
    assert "write_retried" in logs[0] and "send_batch_record" in logs[0]
    assert_recovered(result, max_duplicates=0)


async def _lock_wait_or_division(owner_engine, sql: str, tries: list[int]) -> int:
    tries.append(1)
    async with owner_engine.begin() as conn:
        await conn.execute(text("SET LOCAL lock_timeout = '100ms'"))
        return (await conn.execute(text(sql))).scalar_one()


async def test_rewrite_retries_a_lock_wait_until_it_passes_and_nothing_else(owner_engine):
    async with owner_engine.begin() as conn:
        await conn.execute(text("CREATE TABLE held (id int PRIMARY KEY)"))
        await conn.execute(text("INSERT INTO held VALUES (1)"))
    locked = asyncio.Event()
    release = asyncio.Event()

    async def hold() -> None:
        async with owner_engine.begin() as conn:
            await conn.execute(text("SELECT id FROM held FOR UPDATE"))
            locked.set()
            await release.wait()

    holder = asyncio.ensure_future(hold())
    await locked.wait()
    update = "UPDATE held SET id = id RETURNING id"
    asyncio.get_running_loop().call_later(0.6, release.set)
    tries: list[int] = []
    assert (
        await rewrite_while_transient(
            lambda: _lock_wait_or_division(owner_engine, update, tries), within=5.0, what="test"
        )
        == 1
    )
    assert len(tries) > 1  # it met the lock, then got through once the holder let go
    await holder

    # Past its bound it gives up with the lock wait's own error.
    release.clear()
    locked.clear()
    holder = asyncio.ensure_future(hold())
    await locked.wait()
    started = time.monotonic()
    with pytest.raises(DBAPIError) as raised:
        await rewrite_while_transient(
            lambda: _lock_wait_or_division(owner_engine, update, []), within=0.5, what="test"
        )
    assert raised.value.orig.sqlstate == "55P03"  # type: ignore[union-attr]
    assert time.monotonic() - started < 2.0
    release.set()
    await holder

    # Any other failure is raised at once: repeating it would change nothing.
    tries = []
    with pytest.raises(DBAPIError):
        await rewrite_while_transient(
            lambda: _lock_wait_or_division(owner_engine, "SELECT 1 / 0", tries), within=5.0, what="test"
        )
    assert len(tries) == 1

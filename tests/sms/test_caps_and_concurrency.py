"""Daily caps hold under concurrent bursts, and overlapping cron runs send each SMS once."""

from __future__ import annotations

import asyncio
import uuid

from sqlalchemy import select, text

from core import clock
from core.db import transaction
from notifications.sms import caps, sweep
from notifications.sms.models import SmsDailyCount
from tests.sms.helpers import admin_headers, after_window, audit_rows, ledger, notify, person, sink
from tests.support.factories import make_unit
from workers.sms_jobs import sms_fallback


async def test_unit_cap_holds_under_a_concurrent_burst_of_reservations(
    database_url, sms_settings, monkeypatch
):
    monkeypatch.setattr(sms_settings, "sms_daily_cap_per_unit", 5)
    unit = await make_unit()
    now = clock.utcnow()

    async def reserve_one() -> str | None:
        async with transaction() as session:
            return await caps.reserve(session, user_id=uuid.uuid4(), unit_id=unit.id, now=now)

    outcomes = await asyncio.gather(*(reserve_one() for _ in range(30)))
    assert outcomes.count(None) == 5
    assert set(outcomes) == {None, "cap_unit"}
    async with transaction() as session:
        counts = {
            (row.scope, row.count)
            for row in (await session.execute(select(SmsDailyCount))).scalars()
            if row.scope != "user"
        }
    # A refused reservation consumed nothing: the overall counter also stopped at 5.
    assert counts == {("unit", 5), ("all", 5)}


async def test_total_cap_holds_under_a_burst_and_a_new_local_day_resets_it(
    database_url, sms_settings, monkeypatch
):
    monkeypatch.setattr(sms_settings, "sms_daily_cap_total", 7)
    units = [await make_unit() for _ in range(3)]
    now = clock.utcnow()

    async def reserve_one(index: int) -> str | None:
        async with transaction() as session:
            return await caps.reserve(session, user_id=uuid.uuid4(), unit_id=units[index % 3].id, now=now)

    outcomes = await asyncio.gather(*(reserve_one(i) for i in range(40)))
    assert outcomes.count(None) == 7
    tomorrow = now + __import__("datetime").timedelta(days=1)
    async with transaction() as session:
        assert await caps.reserve(session, user_id=uuid.uuid4(), unit_id=units[0].id, now=tomorrow) is None


async def test_caps_hold_when_two_sweeps_race_over_a_burst_of_emergencies(
    client, emulator, sms_provider, sms_settings, monkeypatch
):
    monkeypatch.setattr(sms_settings, "sms_daily_cap_per_unit", 4)
    monkeypatch.setattr(sms_settings, "sms_sweep_batch", 3)  # many small batches interleave
    unit = await make_unit()
    sender = await admin_headers(client, unit)
    readers = [await person(client, unit, signed_in=False) for _ in range(12)]
    await notify(client, sender, audience={"users": [str(reader.id) for reader in readers]})
    after_window()

    first, second = await asyncio.gather(sweep.run_once(sms_provider), sweep.run_once(sms_provider))
    assert first.sent + second.sent == 4
    assert first.capped + second.capped == 8
    assert len(await sink(emulator)) == 4
    statuses = sorted(row.status for row in await ledger())
    assert statuses == ["capped"] * 8 + ["sent"] * 4
    assert len(await audit_rows("sms.capped")) == 8


async def test_user_cap_limits_sms_per_person_per_day(
    client, emulator, sms_provider, sms_settings, monkeypatch
):
    monkeypatch.setattr(sms_settings, "sms_daily_cap_per_user", 2)
    unit = await make_unit()
    sender = await admin_headers(client, unit)
    reader = await person(client, unit)
    for index in range(4):
        await notify(client, sender, audience={"users": [str(reader.id)]}, title=f"Khẩn {index}")
    after_window()
    stats = await sweep.run_once(sms_provider)
    assert (stats.sent, stats.capped) == (2, 2)
    assert len(await sink(emulator, to=reader.phone)) == 2


async def test_two_overlapping_cron_runs_send_one_sms_per_user(client, emulator, sms_settings):
    unit = await make_unit()
    sender = await admin_headers(client, unit)
    readers = [await person(client, unit, signed_in=False) for _ in range(6)]
    await notify(client, sender, audience={"users": [str(reader.id) for reader in readers]})
    after_window()

    # The cron job as arq runs it (its own gateway client per run), twice at the same time.
    runs = await asyncio.gather(sms_fallback({}), sms_fallback({}), sms_fallback({}))
    assert sum(run["sent"] for run in runs) == 6
    messages = await sink(emulator)
    assert sorted(message["to"] for message in messages) == sorted(str(reader.phone) for reader in readers)
    assert len(await ledger()) == 6
    assert len(await audit_rows("sms.sent")) == 6


async def test_a_killed_worker_s_lease_is_resent_with_the_same_reference_and_delivered_once(
    client, emulator, sms_provider, sms_settings
):
    from notifications.sms import fallback, sender

    unit = await make_unit()
    admin = await admin_headers(client, unit)
    reader = await person(client, unit, signed_in=False)
    await notify(client, admin, audience={"users": [str(reader.id)]})
    after_window()
    async with transaction() as session:
        await fallback.decide(session, now=clock.utcnow())
    async with transaction() as session:
        claimed = await sender.claim(session, limit=10, now=clock.utcnow())
    await sender.send_claimed(sms_provider, claimed)  # sent, then the worker dies before recording

    assert (await sweep.run_once(sms_provider)).sent == 0  # still leased
    clock.advance(sender.lease(10).total_seconds() + 1)
    assert (await sweep.run_once(sms_provider)).sent == 1
    assert emulator.sms.attempts == 2
    assert len(await sink(emulator)) == 1  # the gateway deduplicated the resend by reference
    assert [(row.status, row.attempts) for row in await ledger()] == [("sent", 2)]


async def test_a_run_claims_what_it_can_send_within_its_slice_and_leases_it_long_enough(
    client, emulator, sms_provider, sms_settings, monkeypatch
):
    # A claim of 500 at 10 at a time against a gateway that answers at its 10 s timeout takes
    # 500 s: the run's job was cancelled at 55 s with answers unrecorded, and the fixed 50 s lease
    # let the next minute's run send the same rows again.
    from notifications.sms import fallback, sender

    monkeypatch.setattr(sms_settings, "sms_send_concurrency", 2)
    monkeypatch.setattr(sms_settings, "sms_timeout_seconds", 1.0)
    unit = await make_unit()
    admin = await admin_headers(client, unit)
    readers = [await person(client, unit, signed_in=False) for _ in range(9)]
    await notify(client, admin, audience={"users": [str(reader.id) for reader in readers]})
    after_window()
    async with transaction() as session:
        await fallback.decide(session, now=clock.utcnow())

    limits: list[int] = []
    real_claim = sender.claim

    async def claim(session, *, limit: int, now):  # type: ignore[no-untyped-def]
        limits.append(limit)
        claimed = await real_claim(session, limit=limit, now=now)
        if claimed:
            leased = (
                await session.execute(
                    text("SELECT min(claimed_until) FROM sms_messages WHERE id = ANY(:ids)"),
                    {"ids": [sms.id for sms in claimed]},
                )
            ).scalar_one()
            # Every request of the claim may take the whole timeout: rounds × 1 s, plus the margin.
            assert (leased - now).total_seconds() == sender.waves(limit) * 1.0 + sender.LEASE_MARGIN_SECONDS
        return claimed

    monkeypatch.setattr(sender, "claim", claim)
    sent = 0
    for _ in range(10):  # a loaded machine may need more than one run's slice
        sent += (await sweep.run_once(sms_provider, slice_seconds=3.0)).sent
        if sent == 9:
            break
    assert sent == 9
    # 3 s of slice at 1 s a round, 2 at a time: 6 at most (fewer as the slice runs out), never
    # the 500 of sms_sweep_batch.
    assert limits and all(2 <= limit <= 6 and limit % 2 == 0 for limit in limits), limits
    assert sweep._claimable(500, 3.0, first=False) == 6
    # Nothing for a run whose slice cannot fit one more round, unless it has sent nothing yet.
    assert sweep._claimable(500, 0.5, first=False) == 0 and sweep._claimable(500, 0.5, first=True) == 2


async def test_a_write_tried_again_counts_each_sms_once_in_the_metrics(
    client, emulator, sms_provider, monkeypatch
):
    # The gateway's answer is written again after a transient database failure (core/db_retry.py);
    # the metric is counted once the write committed, not at each try.
    from sqlalchemy.exc import DBAPIError

    from notifications.sms import sender
    from notifications.sms.fallback import audit_sms as real_audit
    from notifications.sms.metrics import SMS_MESSAGES

    unit = await make_unit()
    admin = await admin_headers(client, unit)
    reader = await person(client, unit, signed_in=False)
    await notify(client, admin, audience={"users": [str(reader.id)]})
    after_window()
    counter = SMS_MESSAGES.labels(status="sent", reason="emergency_unacknowledged")
    before = counter._value.get()
    failures = [DBAPIError("UPDATE", {}, ConnectionResetError("cut"), connection_invalidated=True)]

    def audit_once_cut(*args, **kwargs):  # type: ignore[no-untyped-def]
        if failures:  # the first try's transaction dies after its row was written
            raise failures.pop()
        return real_audit(*args, **kwargs)

    monkeypatch.setattr(sender, "audit_sms", audit_once_cut)
    assert (await sweep.run_once(sms_provider)).sent == 1
    assert not failures  # the write was cut once and tried again
    assert counter._value.get() == before + 1
    assert [(row.status, row.attempts) for row in await ledger()] == [("sent", 1)]
    assert len(await audit_rows("sms.sent")) == 1


async def test_a_decision_redone_after_a_failed_commit_counts_once_in_the_metrics(
    client, emulator, sms_provider, monkeypatch
):
    # The decision phase closes a pair as no_phone (or capped) in its own transaction; if that
    # transaction fails, the next run decides the same pair again. The metric must count the
    # committed decision only, not each try.
    import pytest
    from sqlalchemy.exc import DBAPIError

    from notifications.sms import fallback
    from notifications.sms.metrics import SMS_MESSAGES

    unit = await make_unit()
    admin = await admin_headers(client, unit)
    reader = await person(client, unit, phone=False, signed_in=False)
    await notify(client, admin, audience={"users": [str(reader.id)]})
    after_window()
    counter = SMS_MESSAGES.labels(status="no_phone", reason="emergency_unacknowledged")
    before = counter._value.get()
    failures = [DBAPIError("INSERT", {}, ConnectionResetError("cut"), connection_invalidated=True)]
    real_audit = fallback.audit_sms

    def audit_once_cut(*args, **kwargs):  # type: ignore[no-untyped-def]
        if failures:  # the first run's decision dies after its row was closed, before commit
            raise failures.pop()
        return real_audit(*args, **kwargs)

    monkeypatch.setattr(fallback, "audit_sms", audit_once_cut)
    with pytest.raises(DBAPIError):
        await sweep.run_once(sms_provider)
    assert await ledger() == []  # rolled back: nothing decided
    assert (await sweep.run_once(sms_provider)).no_phone == 1
    assert counter._value.get() == before + 1
    assert [row.status for row in await ledger()] == ["no_phone"]
    assert len(await audit_rows("sms.no_phone")) == 1

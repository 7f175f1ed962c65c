"""Reminders and warnings on the right working days (D-13, D-14, D-50), each sent once."""

from __future__ import annotations

import asyncio

from sqlalchemy import select

from core import clock
from core.db import transaction
from tests.support.factories import sign_in
from tests.tracking.helpers import (
    confirm_all,
    ledger,
    occurrences,
    run_sender,
    run_sweep,
    set_clock,
    task,
    tick,
    tracking_notifications,
    upsert,
)
from tracking import sender
from tracking.calendar import load_calendar
from tracking.models import Reminder
from tracking.rules import get_rules
from tracking.sweep import sweep


async def test_deadline_reminders_skip_the_weekend(client, org):
    # Deadline Monday 14 December 2026: 7, 3 and 1 working days before, and the day itself.
    await upsert(client, org, task(org, "W1", deadline="2026-12-14"))
    await confirm_all()
    set_clock("2026-12-03 07:59:00")
    assert await tick() == []
    set_clock("2026-12-03 08:00:30")
    assert occurrences(await tick()) == ["deadline:d7"]
    set_clock("2026-12-09 08:01:00")
    assert occurrences(await tick()) == ["deadline:d3"]
    set_clock("2026-12-11 08:00:30")  # Friday: "one day before" a Monday deadline
    assert occurrences(await tick()) == ["deadline:d1"]
    for moment in ("2026-12-12 09:00:00", "2026-12-13 15:00:00", "2026-12-14 07:59:00"):
        set_clock(moment)
        assert await tick() == []
    set_clock("2026-12-14 08:00:30")
    assert occurrences(await tick()) == ["deadline:d0"]
    assert all(r.user_id == org.officer.id and r.status == "sent" for r in await ledger())


async def test_deadline_reminders_across_tet(client, org):
    # Deadline Thursday 11 February 2027, the first working day after Tết (4–10 February).
    await upsert(client, org, task(org, "TET", deadline="2027-02-11"))
    await confirm_all()
    set_clock("2027-02-01 08:00:30")
    assert occurrences(await tick()) == ["deadline:d3"]
    set_clock("2027-02-03 08:00:30")  # the last working day before Tết is "one day before"
    assert occurrences(await tick()) == ["deadline:d1"]
    for moment in ("2027-02-04 08:00:30", "2027-02-08 10:00:00", "2027-02-10 16:00:00"):
        set_clock(moment)
        assert await tick() == []
    set_clock("2027-02-11 08:00:30")
    assert occurrences(await tick()) == ["deadline:d0"]


async def test_calendar_day_offsets_falling_in_tet_wait_for_the_next_working_slot(client, org, use_rules):
    use_rules(offset_unit="calendar_days", deadline_offsets=[3, 1, 0])
    await upsert(client, org, task(org, "TET_CAL", deadline="2027-02-11"))
    await confirm_all()
    for moment in ("2027-02-08 08:00:30", "2027-02-10 08:00:30", "2027-02-11 07:59:00"):
        set_clock(moment)  # 8 and 10 February are the 3- and 1-day marks, inside Tết
        assert await tick() == []
    set_clock("2027-02-11 08:00:30")
    assert occurrences(await tick()) == ["deadline:d0", "deadline:d1", "deadline:d3"]


async def test_overdue_warnings_then_escalation_to_leader_and_standing_agency(client, org, use_rules):
    use_rules(deadline_offsets=[], standing_agency_unit_code=org.central.code)
    await upsert(client, org, task(org, "LATE", deadline="2026-12-14"))
    await confirm_all()
    expected = {
        "2026-12-15": ("overdue:w1", {org.officer.id}),
        "2026-12-16": ("overdue:w2", {org.officer.id}),
        "2026-12-17": ("overdue:w3", {org.officer.id}),
        "2026-12-18": ("overdue:w4", {org.leader.id}),
        "2026-12-21": ("overdue:w5", {org.approver.id, org.central_leader.id}),  # Monday, after a weekend
    }
    for day, (occurrence, users) in expected.items():
        set_clock(f"{day} 08:00:30")
        rows = await tick()
        assert set(occurrences(rows)) == {occurrence}, day
        assert {r.user_id for r in rows} == users, day
        assert {r.priority for r in rows} == {"high"}
    set_clock("2026-12-22 08:00:30")
    assert await tick() == []


async def test_confirm_window_of_eight_working_hours_spans_a_holiday(client, org):
    # Received Thursday 15 April 2027 14:00; Friday is Hùng Kings' day, then the weekend:
    # half-way (4 working hours) is Monday 09:00, expiry (8) Monday 13:00.
    set_clock("2027-04-15 14:00:00")
    await upsert(
        client, org, task(org, "CONF", deadline="2027-06-30"), task(org, "CONF_OK", deadline="2027-06-30")
    )
    headers = await sign_in(client, org.officer)
    listed = await client.get("/v1/tracking/tasks", headers=headers)
    ok_id = next(t["id"] for t in listed.json()["items"] if t["code"] == "CONF_OK")
    assert next(t for t in listed.json()["items"] if t["code"] == "CONF")["confirm_by"].startswith(
        "2027-04-19T06:00"
    )
    confirmed = await client.post(f"/v1/tracking/tasks/{ok_id}/confirm", headers=headers)
    assert confirmed.status_code == 200 and confirmed.json()["confirmed_at"] is not None
    for moment in ("2027-04-15 16:59:00", "2027-04-16 10:00:00", "2027-04-19 08:59:00"):
        set_clock(moment)
        assert await tick() == []
    set_clock("2027-04-19 09:00:30")
    rows = await tick()
    assert occurrences(rows) == ["confirm:half"] and {r.user_id for r in rows} == {org.officer.id}
    set_clock("2027-04-19 12:59:00")
    assert await tick() == []
    set_clock("2027-04-19 13:00:30")
    rows = await tick()
    assert occurrences(rows) == ["confirm:expiry"] and {r.user_id for r in rows} == {org.leader.id}


async def test_overlapping_sweeps_write_each_reminder_once(client, org, use_rules):
    use_rules(deadline_offsets=[0])
    await upsert(client, org, *[task(org, f"OV_{i}", deadline="2026-12-14") for i in range(20)])
    await confirm_all()
    set_clock("2026-12-14 08:00:30")
    # Sweep A holds its transaction open; sweep B's inserts wait on A's rows, then do nothing.
    async with transaction() as first:
        result_a = await sweep(
            first, now=clock.utcnow(), calendar=await load_calendar(first), rules=get_rules()
        )
        second = asyncio.create_task(run_sweep())
        await asyncio.sleep(0.3)
        assert not second.done()
    result_b = await second
    assert (result_a.pushes, result_b.pushes) == (20, 0)
    # And two sweeps started together agree too.
    clock.advance(60)
    results = await asyncio.gather(run_sweep(), run_sweep())
    assert sum(r.pushes for r in results) == 0
    assert len(await ledger()) == 20


async def test_two_senders_send_each_reminder_exactly_once(client, org, use_rules):
    use_rules(deadline_offsets=[0])
    await upsert(client, org, *[task(org, f"TW_{i}", deadline="2026-12-14") for i in range(20)])
    await confirm_all()
    set_clock("2026-12-14 08:00:30")
    await asyncio.gather(run_sweep(), run_sweep())
    # Worker A claims 10 rows and is still working; worker B skips them and takes the others.
    async with transaction() as first:
        claimed_a = await sender.send_pending(first, now=clock.utcnow(), rules=get_rules(), limit=10)
        claimed_b = await run_sender(limit=10)
    assert (claimed_a, claimed_b) == (10, 10)
    assert await asyncio.gather(run_sender(), run_sender()) == [0, 0]
    rows = await ledger()
    assert {r.status for r in rows} == {"sent"} and len({r.notification_id for r in rows}) == 20
    reminders = [n for n in await tracking_notifications() if n.kind == "tracking.reminder.deadline"]
    assert len(reminders) == 20


async def test_a_missed_tick_is_caught_up_by_the_next_sweep(client, org):
    await upsert(client, org, task(org, "MISS", deadline="2026-12-15"))
    await confirm_all()
    # No sweep ran on Monday (the one-day reminder) nor at 08:00 on Tuesday.
    set_clock("2026-12-15 10:37:00")
    assert occurrences(await tick()) == ["deadline:d0", "deadline:d1"]
    clock.advance(60)
    assert await tick() == []


async def test_quiet_hours_defer_but_emergencies_ring(client, org, use_rules):
    use_rules(deadline_offsets=[0])
    await upsert(
        client,
        org,
        task(
            org,
            "ROUTINE",
            deadline="2026-12-14",
            responsible_users=[org.officer.username, org.officer2.username],
        ),
        task(org, "URGENT", deadline="2026-12-14", priority=1),
    )
    await confirm_all()
    set_clock("2026-12-14 07:00:00")
    headers = await sign_in(client, org.officer)
    quiet = await client.put(
        "/v1/tracking/preferences", json={"quiet_start": "07:30", "quiet_end": "09:30"}, headers=headers
    )
    assert quiet.status_code == 200, quiet.text
    set_clock("2026-12-14 08:00:30")
    rows = await tick()
    sent = {(r.subject_id, r.user_id, r.priority) for r in rows}
    assert {(user, priority) for _, user, priority in sent} == {
        (org.officer2.id, "normal"),  # no quiet hours
        (org.officer.id, "emergency"),  # in quiet hours, but the priority-1 task rings
    }
    set_clock("2026-12-14 09:30:30")
    rows = await tick()
    assert [(r.user_id, r.priority) for r in rows] == [(org.officer.id, "normal")]


async def test_emergencies_ring_outside_working_hours(client, org, use_rules):
    use_rules(offset_unit="calendar_days", deadline_offsets=[1])
    await upsert(
        client,
        org,
        task(org, "SUN_URGENT", deadline="2026-12-14", priority=1),
        task(org, "SUN", deadline="2026-12-14"),
    )
    await confirm_all()
    set_clock("2026-12-13 08:00:30")  # Sunday: the calendar-day "one day before"
    rows = await tick()
    assert [r.priority for r in rows] == ["emergency"]
    set_clock("2026-12-14 08:00:30")
    rows = await tick()
    assert [r.priority for r in rows] == ["normal"]


async def test_done_tasks_and_reported_kpis_get_no_reminders(client, org):
    await upsert(client, org, task(org, "DONE", deadline="2026-12-14", result_status="done"))
    kpi = {
        "code": "A.02.01",
        "period": "2026-11",
        "period_kind": "month",
        "version": 1,
        "name": "Chỉ số",
        "unit": org.province.code,
        "responsible_users": [org.officer2.username],
        "report_due": "2026-12-14",
    }
    assert (
        await client.put("/v1/tracking/kpis", json={"kpis": [kpi]}, headers=org.system)
    ).status_code == 200
    set_clock("2026-12-14 08:00:30")
    rows = await tick()
    assert occurrences(rows) == ["report:r0", "report:r1"] and {r.user_id for r in rows} == {org.officer2.id}
    await client.put(
        "/v1/tracking/kpis",
        json={"kpis": [{**kpi, "version": 2, "reported_at": "2026-12-14T09:00:00+07:00"}]},
        headers=org.system,
    )
    clock.advance(24 * 3600)
    assert await tick() == []


async def test_daily_digest_sends_one_push_for_many_reminders(client, org):
    await upsert(client, org, *[task(org, f"DG_{i}", deadline="2026-12-14") for i in range(3)])
    await confirm_all()
    set_clock("2026-12-14 07:00:00")
    headers = await sign_in(client, org.officer)
    await client.put("/v1/tracking/preferences", json={"daily_digest": True}, headers=headers)
    set_clock("2026-12-14 08:00:30")
    await run_sweep()
    assert await run_sender() == 0  # digest rows are not pushed one by one
    async with transaction() as session:
        calendar = await load_calendar(session)
        assert (
            await sender.send_digests(session, now=clock.utcnow(), calendar=calendar, rules=get_rules()) == 1
        )
    async with transaction() as session:
        assert (
            await sender.send_digests(session, now=clock.utcnow(), calendar=calendar, rules=get_rules()) == 0
        )
    [digest] = [n for n in await tracking_notifications() if n.kind.startswith("tracking.digest")]
    assert "6 việc" in digest.body["vi"] and "DG_0" in digest.body["vi"]  # d0 and d1 of 3 tasks
    assert [n.kind for n in await tracking_notifications()].count("tracking.assigned") == 1
    rows = await ledger()
    assert {r.notification_id for r in rows} == {digest.id}
    async with transaction() as session:
        assert (await session.execute(select(Reminder).where(Reminder.status == "pending"))).first() is None


async def test_the_cron_sweep_queues_senders_that_send(client, org, worker_ctx, use_rules):
    from tests.notifications.helpers import run_workers
    from workers.tracking_jobs import tracking_sweep

    use_rules(deadline_offsets=[0])
    await upsert(client, org, *[task(org, f"JOB_{i}", deadline="2026-12-14") for i in range(3)])
    await confirm_all()
    set_clock("2026-12-14 08:00:30")
    summary = await tracking_sweep({})
    assert summary["pushes"] == 3 and summary["senders"] == 1
    await run_workers(worker_ctx)  # runs the queued tracking_send job (and the fan-outs)
    rows = await ledger()
    assert len(rows) == 3 and {r.status for r in rows} == {"sent"}
    assert (await tracking_sweep({}))["senders"] == 0  # nothing pending: no sender queued


async def test_only_the_lead_unit_confirms(client, org):
    from tests.support.factories import make_account, make_unit

    partner = await make_unit(parent=org.central, name="Sở phối hợp")
    partner_officer = await make_account(role=org.officer.role, unit=partner)
    await upsert(client, org, task(org, "COOP", cooperating_units=[partner.code]))
    headers = await sign_in(client, partner_officer)
    listed = await client.get("/v1/tracking/tasks", params={"scope": "units"}, headers=headers)
    [seen] = listed.json()["items"]
    refused = await client.post(f"/v1/tracking/tasks/{seen['id']}/confirm", headers=headers)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "not_lead_unit"
    officer = await sign_in(client, org.officer)
    assert (await client.post(f"/v1/tracking/tasks/{seen['id']}/confirm", headers=officer)).status_code == 200

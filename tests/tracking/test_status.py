"""Deadline status and colour (D-12), staff and leaders' views (D-16), the calendar's ad-hoc days."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from auth.roles import Role
from core import clock
from core.db import transaction
from tests.support.factories import make_account, make_unit, sign_in
from tests.tracking.helpers import confirm_all, occurrences, set_clock, task, tick, upsert
from tracking.models import Task
from tracking.rules import get_rules
from tracking.status import deadline_status, status_of, status_sql

DEADLINES = {
    "S_PAST": "2026-12-01",
    "S_SOON": "2026-12-08",
    "S_LATER": "2027-03-01",
    "S_DONE": "2026-12-01",
}


async def seed(client, org) -> None:  # type: ignore[no-untyped-def]
    await upsert(
        client,
        org,
        *[
            task(org, code, deadline=day, result_status="done" if code == "S_DONE" else "in_progress")
            for code, day in DEADLINES.items()
        ],
    )


async def test_status_in_python_and_sql_agree(client, org, use_rules):
    await seed(client, org)
    set_clock("2026-12-03 10:00:00")
    for overrides in ({}, {"due_soon_percent": 20}, {"due_soon_days": 30}):
        rules = use_rules(**overrides)
        now = clock.utcnow()
        async with transaction() as session:
            rows = (await session.execute(select(Task, status_sql(now=now, rules=rules)))).all()
        assert rows and all(status_of(t, now=now, rules=rules) == sql for t, sql in rows), overrides
    rules = use_rules()
    expected = {"S_PAST": "overdue", "S_SOON": "due_soon", "S_LATER": "on_time", "S_DONE": "done"}
    async with transaction() as session:
        tasks = (await session.execute(select(Task))).scalars().all()
    assert {t.code: status_of(t, now=clock.utcnow(), rules=rules) for t in tasks} == expected


def test_due_soon_by_share_of_the_window():
    rules = get_rules().model_copy(update={"due_soon_percent": 20})
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    deadline = start + dt.timedelta(days=100)
    status = lambda now: deadline_status(  # noqa: E731
        result_status="in_progress", deadline=deadline, window_start=start, now=now, rules=rules
    )
    assert status(start + dt.timedelta(days=79)) == "on_time"
    assert status(start + dt.timedelta(days=81)) == "due_soon"
    assert status(deadline + dt.timedelta(seconds=1)) == "overdue"


async def test_staff_list_their_tasks_with_colours(client, org):
    await seed(client, org)
    await upsert(client, org, task(org, "OTHER", responsible_users=[org.officer2.username]))
    set_clock("2026-12-03 10:00:00")
    headers = await sign_in(client, org.officer)
    mine = await client.get("/v1/tracking/tasks", headers=headers)
    assert mine.status_code == 200, mine.text
    items = {t["code"]: t for t in mine.json()["items"]}
    assert set(items) == set(DEADLINES)
    assert items["S_PAST"]["deadline_status"] == "overdue" and items["S_PAST"]["colour"] == "#C62828"
    assert items["S_SOON"]["colour"] == "#F9A825" and items["S_LATER"]["colour"] == "#2E7D32"
    overdue = await client.get("/v1/tracking/tasks", params={"deadline_status": "overdue"}, headers=headers)
    assert [t["code"] for t in overdue.json()["items"]] == ["S_PAST"]
    page = await client.get("/v1/tracking/tasks", params={"limit": 2}, headers=headers)
    rest = await client.get(
        "/v1/tracking/tasks", params={"limit": 10, "cursor": page.json()["next_cursor"]}, headers=headers
    )
    codes = [t["code"] for t in page.json()["items"] + rest.json()["items"]]
    assert sorted(codes) == sorted(DEADLINES) and len(codes) == 4
    bad = await client.get("/v1/tracking/tasks", params={"cursor": "%%%"}, headers=headers)
    assert bad.status_code == 400


async def test_leaders_see_their_units_and_counts(client, org):
    await seed(client, org)
    elsewhere = await make_unit(name="Tỉnh khác")
    outsider = await make_account(role=Role.LEADER, unit=elsewhere)
    set_clock("2026-12-03 10:00:00")
    leader = await sign_in(client, org.leader)
    units = await client.get("/v1/tracking/tasks", params={"scope": "units"}, headers=leader)
    assert len(units.json()["items"]) == 4
    counts = await client.get("/v1/tracking/tasks/counts", headers=leader)
    assert counts.status_code == 200, counts.text
    assert {(c["deadline_status"], c["count"]) for c in counts.json()} == {
        ("overdue", 1),
        ("due_soon", 1),
        ("on_time", 1),
        ("done", 1),
    }
    assert {c["unit_id"] for c in counts.json()} == {str(org.province.id)}
    other = await sign_in(client, outsider)
    assert (await client.get("/v1/tracking/tasks", params={"scope": "units"}, headers=other)).json()[
        "items"
    ] == []
    assert (await client.get("/v1/tracking/tasks/counts", headers=other)).json() == []
    task_id = units.json()["items"][0]["id"]
    assert (await client.get(f"/v1/tracking/tasks/{task_id}", headers=other)).status_code == 404
    assert (await client.get(f"/v1/tracking/tasks/{task_id}", headers=leader)).status_code == 200
    # Officers hold no dashboard permission.
    officer = await sign_in(client, org.officer)
    assert (await client.get("/v1/tracking/tasks/counts", headers=officer)).status_code == 403


async def test_an_ad_hoc_day_off_moves_reminders(client, org, use_rules):
    use_rules(deadline_offsets=[1])
    await upsert(client, org, task(org, "ADHOC", deadline="2026-12-15"))
    await confirm_all()
    admin = await sign_in(client, org.admin)
    day_off = await client.put(
        "/v1/tracking/calendar", json={"day": "2026-12-14", "kind": "off", "note": "Nghỉ bù"}, headers=admin
    )
    assert day_off.status_code == 200, day_off.text
    officer = await sign_in(client, org.officer)
    refused = await client.put(
        "/v1/tracking/calendar", json={"day": "2026-12-14", "kind": "off"}, headers=officer
    )
    assert refused.status_code == 403
    listed = await client.get("/v1/tracking/calendar", headers=officer)
    assert listed.json() == [{"day": "2026-12-14", "kind": "off", "note": "Nghỉ bù"}]
    set_clock("2026-12-11 08:00:30")  # Friday becomes "one working day before" Tuesday
    assert occurrences(await tick()) == ["deadline:d1"]
    admin = await sign_in(client, org.admin)
    assert (await client.delete("/v1/tracking/calendar/2026-12-14", headers=admin)).status_code == 204
    assert (await client.delete("/v1/tracking/calendar/2026-12-14", headers=admin)).status_code == 404


async def test_preferences_validate_quiet_hours(client, org):
    headers = await sign_in(client, org.officer)
    assert (await client.get("/v1/tracking/preferences", headers=headers)).json() == {
        "quiet_start": None,
        "quiet_end": None,
        "daily_digest": False,
    }
    for body in (
        {"quiet_start": "22:00"},
        {"quiet_start": "22:00", "quiet_end": "22:00"},
        {"daily_digest": "x"},
    ):
        assert (await client.put("/v1/tracking/preferences", json=body, headers=headers)).status_code == 422
    ok = await client.put(
        "/v1/tracking/preferences", json={"quiet_start": "22:00", "quiet_end": "06:30"}, headers=headers
    )
    assert ok.json()["quiet_end"] == "06:30:00"

"""Intake from the tracking system: idempotent versioned upserts, classified tasks, scopes, and
the events that notify people (D-10, D-11, D-15, D-17)."""

from __future__ import annotations

import itertools
import uuid
from typing import Any

from sqlalchemy import func, select, text

from core.db import transaction
from tests.support.held_rows import until_waiting, while_held
from tests.tracking.helpers import make_api_client, task, tracking_notifications, upsert
from tracking.models import Kpi, Task


async def stored(code: str) -> Task:
    async with transaction() as session:
        found = (await session.execute(select(Task).where(Task.code == code))).scalar_one()
        return found


async def test_upsert_creates_then_updates_by_code(client, org):
    body = task(org, "012_TBKL_NQ57", description="Mô tả", attachments=[{"name": "bc.pdf", "ref": "doc://1"}])
    first = await upsert(client, org, body)
    assert first.status_code == 200, first.text
    assert first.json() == {"created": 1, "updated": 0, "ignored": [], "notifications": 1}
    second = await upsert(client, org, {**body, "version": 2, "result_status": "done"})
    assert second.json()["updated"] == 1
    saved = await stored("012_TBKL_NQ57")
    assert (saved.version, saved.result_status, saved.description) == (2, "done", "Mô tả")
    assert saved.attachments == [{"name": "bc.pdf", "ref": "doc://1", "size": None, "media_type": None}]


async def test_a_stale_upsert_does_not_overwrite_a_newer_task(client, org):
    body = task(org, version=5, name="Phiên bản 5")
    assert (await upsert(client, org, body)).status_code == 200
    stale = await upsert(client, org, {**body, "version": 4, "name": "Phiên bản 4"})
    assert stale.status_code == 200
    assert stale.json()["ignored"] == [body["code"]] and stale.json()["updated"] == 0
    replay = await upsert(client, org, body)  # the same version again: idempotent, nothing changes
    assert replay.json()["ignored"] == [body["code"]]
    assert (await stored(body["code"])).name == "Phiên bản 5"


async def test_classified_task_with_content_is_rejected(client, org):
    cases: list[tuple[str, Any]] = [
        ("description", "Nội dung mật"),
        ("difficulties", "x"),
        ("proposals", "y"),
        ("attachments", [{"name": "a.pdf", "ref": "doc://a"}]),
    ]
    for field, value in cases:
        response = await upsert(client, org, task(org, classified=True, **{field: value}))
        assert response.status_code == 422, (field, response.text)
        assert field in response.text
    ok = await upsert(client, org, task(org, classified=True, result_status="in_progress"))
    assert ok.status_code == 200, ok.text


async def test_bulk_upsert_of_a_thousand_tasks(client, org):
    tasks = [task(org, f"BULK_{i:05d}") for i in range(1000)]
    response = await upsert(client, org, *tasks)
    assert response.status_code == 200, response.text
    assert response.json()["created"] == 1000
    # Same people, same event: one summary notification, not a thousand pushes.
    assert response.json()["notifications"] == 1
    again = await upsert(client, org, *[{**t, "version": 2} for t in tasks[:500]], *tasks[500:])
    assert again.json()["updated"] == 500 and len(again.json()["ignored"]) == 500
    async with transaction() as session:
        assert (await session.execute(select(func.count()).select_from(Task))).scalar_one() == 1000


async def test_only_api_clients_with_the_tracking_scope_may_write(client, org):
    other = await make_api_client(client, org.admin, org.central, ["notifications:send"])
    denied = await client.put(
        "/v1/tracking/tasks", json={"tasks": [task(org)]}, headers={"Authorization": f"Bearer {other}"}
    )
    assert denied.status_code == 403 and denied.json()["error"]["code"] == "missing_scope"
    anonymous = await client.put("/v1/tracking/tasks", json={"tasks": [task(org)]})
    assert anonymous.status_code == 401


async def test_units_outside_the_clients_subtree_are_unknown(client, org):
    from tests.support.factories import make_unit

    elsewhere = await make_unit(name="Tỉnh khác")
    province_key = await make_api_client(client, org.admin, org.province, ["tracking:write"])
    response = await client.put(
        "/v1/tracking/tasks",
        json={"tasks": [task(org, lead_unit=elsewhere.code, responsible_users=[])]},
        headers={"Authorization": f"Bearer {province_key}"},
    )
    assert response.status_code == 422 and response.json()["error"]["code"] == "unknown_units"


async def test_bad_input_is_a_clear_4xx(client, org):
    cases = [
        {"tasks": []},
        {"tasks": [task(org, priority=9)]},
        {"tasks": [task(org, deadline="31/12/2026")]},
        {"tasks": [task(org, deadline="2026-12-31T17:00:00")]},  # no offset
        {"tasks": [task(org, deadline="0001-01-01T00:00:00+07:00")]},  # would overflow in UTC
        {"tasks": [task(org, lead_unit="NO_SUCH_UNIT")]},
        {"tasks": [task(org, responsible_users=["nobody"])]},
        {"tasks": [task(org, code="bad code with spaces")]},
        {"tasks": [task(org, version=-1)]},
        {"tasks": [task(org, report={"status": "rejected"})]},  # a rejection needs its reason
        {"tasks": [task(org, "DUP"), task(org, "DUP")]},
        {"tasks": [task(org, extra="mass assignment")]},
    ]
    for body in cases:
        response = await client.put("/v1/tracking/tasks", json=body, headers=org.system)
        assert response.status_code == 422, (body, response.text)
        assert set(response.json()["error"]) >= {"code", "message"}


async def test_events_notify_the_right_people(client, org):
    body = task(org, "EV_1", responsible_users=[org.officer.username])
    await upsert(client, org, body)
    await upsert(client, org, {**body, "version": 2, "deadline": "2027-01-15"})
    await upsert(
        client,
        org,
        {
            **body,
            "version": 3,
            "deadline": "2027-01-15",
            "report": {"status": "rejected", "reason": "Thiếu số liệu"},
        },
    )
    await upsert(
        client, org, {**body, "version": 4, "deadline": "2027-01-15", "report": {"status": "approved"}}
    )
    # A new responsible user is told about the assignment; the earlier one is not told again.
    await upsert(
        client,
        org,
        {
            **body,
            "version": 5,
            "deadline": "2027-01-15",
            "report": {"status": "approved"},
            "responsible_users": [org.officer.username, org.officer2.username],
        },
    )
    sent = [(n.kind, n.audience["users"], n.body["vi"]) for n in await tracking_notifications()]
    officer, officer2 = str(org.officer.id), str(org.officer2.id)
    assert [(kind, users) for kind, users, _ in sent] == [
        ("tracking.assigned", [officer]),
        ("tracking.deadline_changed", [officer]),
        ("tracking.report_rejected", [officer]),
        ("tracking.report_approved", [officer]),
        ("tracking.assigned", [officer2]),
    ]
    assert "Thiếu số liệu" in sent[2][2] and "15/01/2027" in sent[1][2]


async def test_classified_events_carry_no_task_content(client, org):
    await upsert(client, org, task(org, "MAT_01", name="Tên nhiệm vụ mật", classified=True))
    [notification] = await tracking_notifications()
    assert notification.sensitivity == "classified"
    text = str(notification.title) + str(notification.body) + str(notification.data)
    assert "MAT_01" not in text and "Tên nhiệm vụ mật" not in text


async def test_kpis_upsert_with_periods_and_versions(client, org):
    kpi = {
        "code": "A.02.01",
        "period": "2026-Q4",
        "period_kind": "quarter",
        "version": 3,
        "name": "Tỷ lệ hồ sơ trực tuyến",
        "unit": org.province.code,
        "target": "80.5",
        "value": "72",
        "report_due": "2027-01-10",
    }
    first = await client.put("/v1/tracking/kpis", json={"kpis": [kpi]}, headers=org.system)
    assert first.status_code == 200 and first.json()["created"] == 1, first.text
    stale = await client.put("/v1/tracking/kpis", json={"kpis": [{**kpi, "version": 2}]}, headers=org.system)
    assert stale.json()["ignored"] == ["A.02.01@2026-Q4"]
    bad = await client.put("/v1/tracking/kpis", json={"kpis": [{**kpi, "value": "NaN"}]}, headers=org.system)
    assert bad.status_code == 422
    async with transaction() as session:
        saved = (await session.execute(select(Kpi))).scalar_one()
    assert str(saved.target) == "80.5" and saved.version == 3


async def test_staff_cannot_use_the_intake(client, org):
    from tests.support.factories import sign_in

    headers = await sign_in(client, org.officer)
    response = await client.put("/v1/tracking/tasks", json={"tasks": [task(org)]}, headers=headers)
    assert response.status_code == 403
    assert uuid.UUID(str(org.officer.id))


NASTY: list[Any] = [None, "", "x" * 5000, -1, 2**70, 1.5, [], {}, "\u0000", "9999-12-31", "0001-01-01", True]


async def test_no_field_value_makes_the_intake_fail_with_5xx(client, org):
    # The contract run signs in as a system admin, which this API refuses (403) before the body
    # matters: mutate every field of a valid task and KPI here, as the connected system.
    valid_task = task(org, "FUZZ", attachments=[{"name": "a", "ref": "r"}], report={"status": "submitted"})
    valid_kpi = {
        "code": "K.1",
        "period": "2026-11",
        "period_kind": "month",
        "version": 1,
        "name": "Chỉ số",
        "unit": org.province.code,
        "report_due": "2026-12-10",
    }
    versions = itertools.count(1)
    for path, key, valid in (
        ("/v1/tracking/tasks", "tasks", valid_task),
        ("/v1/tracking/kpis", "kpis", valid_kpi),
    ):
        for field in valid:
            for value in NASTY:
                version = next(versions)  # each accepted record really writes
                body = {key: [{**valid, "version": version, field: value}]}
                response = await client.put(path, json=body, headers=org.system)
                assert response.status_code < 500, (path, field, value, response.text)
                assert "error" in response.json() or response.status_code == 200


async def test_two_batches_naming_the_same_tasks_in_opposite_orders_both_succeed(client, org, owner_engine):
    # Each upsert took its rows' locks (a new code's index entry included) in the order of its
    # batch: two systems sending the same new tasks in opposite orders each held rows the other
    # waited for, and PostgreSQL broke the deadlock by failing one of them (a 500).
    codes = [f"T_ORDER_{index:03d}" for index in range(21)]
    batch = [task(org, code) for code in codes]
    middle = codes[10]
    forward, backward = await while_held(
        owner_engine,
        "INSERT INTO tracking_tasks (id, code, name, lead_unit_id, deadline, deadline_date, priority,"
        " result_status, received_at, version)"
        " VALUES (gen_random_uuid(), :code, 'x', :unit, now(), current_date, 3, 'in_progress', now(), 1)",
        {"code": middle, "unit": org.province.id},
        upsert(client, org, *batch),
        upsert(client, org, *reversed(batch)),
    )
    assert (forward.status_code, backward.status_code) == (200, 200), (forward.text, backward.text)
    results = [forward.json(), backward.json()]
    assert sum(r["created"] for r in results) == 21
    assert sorted(code for r in results for code in r["ignored"]) == codes
    async with transaction() as session:
        assert (await session.scalar(select(func.count()).where(Task.code.in_(codes)))) == 21


async def test_two_kpi_batches_in_opposite_orders_both_succeed(client, org, owner_engine):
    kpis = [
        {
            "code": f"K.ORDER.{index:03d}",
            "period": "2026-11",
            "period_kind": "month",
            "version": 1,
            "name": "Chỉ số",
            "unit": org.province.code,
            "report_due": "2026-12-10",
        }
        for index in range(21)
    ]
    forward, backward = await while_held(
        owner_engine,
        "INSERT INTO tracking_kpis (id, code, period, period_kind, name, unit_id, report_due, version)"
        " VALUES (gen_random_uuid(), :code, '2026-11', 'month', 'x', :unit, '2026-12-10', 1)",
        {"code": kpis[10]["code"], "unit": org.province.id},
        client.put("/v1/tracking/kpis", json={"kpis": kpis}, headers=org.system),
        client.put("/v1/tracking/kpis", json={"kpis": kpis[::-1]}, headers=org.system),
    )
    assert (forward.status_code, backward.status_code) == (200, 200), (forward.text, backward.text)
    async with transaction() as session:
        assert (await session.scalar(select(func.count()).where(Kpi.code.like("K.ORDER.%")))) == 21


async def test_a_deadlock_the_code_did_not_foresee_is_503_busy_not_500(client, org, owner_engine):
    # PostgreSQL ends a deadlock by rolling one transaction back: nothing of it was written and a
    # retry is safe, as after a lock timeout. The request it picks answers 503 busy (Retry-After).
    import asyncio

    first, second = task(org, "T_DEADLOCK_A"), task(org, "T_DEADLOCK_B")
    assert (await upsert(client, org, first, second)).status_code == 200
    async with owner_engine.connect() as holder:
        await holder.begin()
        lock = "SELECT 1 FROM tracking_tasks WHERE code = :code FOR UPDATE"
        await holder.execute(text(lock), {"code": "T_DEADLOCK_B"})
        # The request locks A (its batch's rows, in code order), then waits for B.
        request = asyncio.ensure_future(
            upsert(client, org, {**first, "version": 2}, {**second, "version": 2})
        )
        await until_waiting(owner_engine)
        # Now this transaction waits for A: a cycle. The request has waited longer, so its
        # deadlock check runs first and it is the one rolled back.
        await holder.execute(text(lock), {"code": "T_DEADLOCK_A"})
        response = await request
        await holder.rollback()
    from tests.contract.support import assert_error

    assert_error(response, 503, "busy")  # in the shape: one X-Request-ID, the body's (was "id, id")
    assert response.headers["Retry-After"] == "1"
    assert (await stored("T_DEADLOCK_A")).version == 1

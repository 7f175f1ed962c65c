"""A unit refuses a task (D-14: wrongly assigned, or outside its authority) with a reason: stored
on the task, audited, sent to the assigning and standing agencies, and an answer that stops the
confirm-window reminders exactly as a confirmation does."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
from sqlalchemy import select, update

from auth.audit.models import AuditLog
from auth.roles import Role
from core.db import transaction
from tests.notifications.helpers import run_workers
from tests.support.factories import make_account, make_unit, sign_in
from tests.tracking.helpers import (
    Org,
    concurrently,
    make_api_client,
    occurrences,
    set_clock,
    task,
    tick,
    tracking_notifications,
    upsert,
)
from tests.tracking.test_privacy import register_tracking_device
from tracking.models import Task

REASON = "Nhiệm vụ thuộc lĩnh vực của Sở Y tế, không phải Tỉnh ủy"
OTHER = {"code": "outside_authority", "reason": "Không thuộc thẩm quyền"}


async def task_id(code: str) -> uuid.UUID:
    async with transaction() as session:
        found: uuid.UUID = (await session.execute(select(Task.id).where(Task.code == code))).scalar_one()
        return found


async def refuse(
    client: httpx.AsyncClient, headers: dict[str, str], code: str, body: dict[str, Any]
) -> httpx.Response:
    return await client.post(f"/v1/tracking/tasks/{await task_id(code)}/refuse", json=body, headers=headers)


async def sent_by_province(client: httpx.AsyncClient, org: Org, *tasks: dict[str, Any]) -> None:
    """The province's own connected system assigns: the assigning agency (the province) is then
    not the standing agency (the root unit, the central office)."""
    key = await make_api_client(client, org.admin, org.province, ["tracking:write"])
    response = await client.put(
        "/v1/tracking/tasks", json={"tasks": list(tasks)}, headers={"Authorization": f"Bearer {key}"}
    )
    assert response.status_code == 200, response.text


async def test_a_refusal_is_stored_audited_and_sent_to_both_agencies(client, org, emulator, worker_ctx):
    set_clock("2026-12-07 09:00:00")
    await sent_by_province(client, org, task(org, "REF_1", name="Kiểm tra an toàn thực phẩm"))
    headers = await sign_in(client, org.officer)
    response = await refuse(client, headers, "REF_1", {"code": "wrong_assignment", "reason": f"  {REASON} "})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["refusal_reason_code"] == "wrong_assignment" and body["refusal_reason"] == REASON
    assert body["refused_by"] == str(org.officer.id) and body["refused_at"].startswith("2026-12-07T02:0")
    assert body["confirmed_at"] is None and body["confirm_by"] is None
    shown = await client.get(f"/v1/tracking/tasks/{body['id']}", headers=headers)
    assert shown.json()["refusal_reason"] == REASON

    [note] = [n for n in await tracking_notifications() if n.kind == "tracking.refused"]
    # Standing agency: approver and leader of the root unit; assigning agency: the province's
    # leader. Not the refusing officer, not the other officer of the province.
    expected = {org.approver.id, org.central_leader.id, org.leader.id}
    assert {uuid.UUID(u) for u in note.audience["users"]} == expected
    assert note.priority == "high" and note.app == "tracking" and note.created_by_kind == "system"
    assert REASON in note.body["vi"] and "giao không đúng đơn vị" in note.body["vi"]
    assert note.data == {"task_id": body["id"], "task_code": "REF_1", "refusal": "wrong_assignment"}
    await run_workers(worker_ctx)  # the fan-out writes each recipient's inbox row
    for account in (org.approver, org.leader):
        inbox = await client.get(
            "/v1/inbox", params={"app": "tracking"}, headers=await sign_in(client, account)
        )
        assert [i["kind"] for i in inbox.json()["items"] if i["kind"] == "tracking.refused"] == [
            "tracking.refused"
        ], account.username

    async with transaction() as session:
        [row] = (
            await session.execute(select(AuditLog).where(AuditLog.action == "tracking.task.refused"))
        ).scalars()
    assert row.object_id == body["id"] and row.actor_id == org.officer.id
    assert row.details["reason_code"] == "wrong_assignment" and row.details["notified"] == 3


async def test_the_standing_agency_alone_when_the_assigner_is_the_standing_agency(client, org):
    await upsert(client, org, task(org, "REF_C"))  # org.key belongs to the central (root) unit
    assert (await refuse(client, await sign_in(client, org.officer), "REF_C", OTHER)).status_code == 200
    [note] = [n for n in await tracking_notifications() if n.kind == "tracking.refused"]
    assert {uuid.UUID(u) for u in note.audience["users"]} == {org.approver.id, org.central_leader.id}


async def test_reason_and_code_are_validated(client, org):
    await upsert(client, org, task(org, "REF_V"))
    headers = await sign_in(client, org.officer)
    bad_bodies = [
        {"code": "too_busy", "reason": REASON},
        {"code": "wrong_assignment", "reason": "   "},
        {"code": "wrong_assignment", "reason": "x" * 2001},
        {"code": "wrong_assignment", "reason": "bad \x00 byte"},
        {"code": "wrong_assignment", "reason": "lone \udc80 surrogate"},
        {"code": "wrong_assignment"},
        {"code": "wrong_assignment", "reason": REASON, "refused_by": str(uuid.uuid4())},
    ]
    for bad in bad_bodies:
        response = await client.post(
            f"/v1/tracking/tasks/{await task_id('REF_V')}/refuse",
            content=json.dumps(bad).encode(),
            headers={**headers, "Content-Type": "application/json"},
        )
        assert response.status_code == 422, (bad, response.text)
        assert set(response.json()["error"]) >= {"code", "message", "details"}
    async with transaction() as session:
        untouched = (await session.execute(select(Task).where(Task.code == "REF_V"))).scalar_one()
    assert untouched.refused_at is None
    # The longest reason is stored whole (the notification text is cut to the body's limit).
    longest = await refuse(client, headers, "REF_V", {**OTHER, "reason": "x" * 2000})
    assert longest.status_code == 200 and longest.json()["refusal_reason"] == "x" * 2000


async def test_one_answer_only_refuse_after_confirm_twice_or_confirm_after_refuse_is_409(client, org):
    await upsert(client, org, task(org, "REF_A"), task(org, "REF_B"))
    headers = await sign_in(client, org.officer)
    confirmed = await client.post(f"/v1/tracking/tasks/{await task_id('REF_A')}/confirm", headers=headers)
    assert confirmed.status_code == 200
    late = await refuse(client, headers, "REF_A", OTHER)
    assert late.status_code == 409 and late.json()["error"]["code"] == "task_confirmed"

    assert (await refuse(client, headers, "REF_B", OTHER)).status_code == 200
    again = await refuse(client, headers, "REF_B", {"code": "wrong_assignment", "reason": REASON})
    assert again.status_code == 409 and again.json()["error"]["code"] == "task_already_refused"
    confirm = await client.post(f"/v1/tracking/tasks/{await task_id('REF_B')}/confirm", headers=headers)
    assert confirm.status_code == 409 and confirm.json()["error"]["code"] == "task_refused"
    async with transaction() as session:
        stored = (await session.execute(select(Task).where(Task.code == "REF_B"))).scalar_one()
    assert stored.refusal_reason_code == "outside_authority" and stored.confirmed_at is None
    notes = [n for n in await tracking_notifications() if n.kind == "tracking.refused"]
    assert len(notes) == 1  # the 409s sent nothing


async def test_only_the_lead_unit_refuses(client, org):
    partner = await make_unit(parent=org.central, name="Sở phối hợp")
    partner_officer = await make_account(role=org.officer.role, unit=partner)
    await upsert(client, org, task(org, "REF_COOP", cooperating_units=[partner.code]))
    denied = await refuse(client, await sign_in(client, partner_officer), "REF_COOP", OTHER)
    assert denied.status_code == 403 and denied.json()["error"]["code"] == "not_lead_unit"
    stranger = await make_account(role=org.officer.role, unit=await make_unit(parent=org.central))
    hidden = await refuse(client, await sign_in(client, stranger), "REF_COOP", OTHER)
    assert hidden.status_code == 404
    system = await refuse(client, org.system, "REF_COOP", OTHER)
    assert system.status_code == 403


async def test_a_refusal_stops_the_confirm_reminders_and_silence_still_escalates(client, org):
    # Received Monday 7 Dec 2026 08:00: half-way (4 working hours) 12:00, expiry (8) 17:00…
    # with the lunch break as the working calendar has it; the test only needs before/after.
    set_clock("2026-12-07 08:00:00")
    await upsert(
        client,
        org,
        task(org, "R_REFUSED", deadline="2027-06-30"),
        task(org, "R_SILENT", deadline="2027-06-30"),
        task(org, "R_CONFIRMED", deadline="2027-06-30"),
    )
    headers = await sign_in(client, org.officer)
    assert (await refuse(client, headers, "R_REFUSED", OTHER)).status_code == 200
    ok = await client.post(f"/v1/tracking/tasks/{await task_id('R_CONFIRMED')}/confirm", headers=headers)
    assert ok.status_code == 200
    silent = await task_id("R_SILENT")
    seen: list[Any] = []
    for moment in ("2026-12-07 13:00:30", "2026-12-08 10:00:30", "2026-12-09 10:00:30"):
        set_clock(moment)
        seen += await tick()
    assert {r.subject_id for r in seen} == {silent}
    assert occurrences(seen) == ["confirm:expiry", "confirm:half"]
    assert {r.user_id for r in seen if r.occurrence.startswith("expiry")} == {org.leader.id}


async def test_a_new_lead_unit_starts_without_the_refusal(client, org):
    other = await make_unit(parent=org.central, name="Sở Y tế")
    await upsert(client, org, task(org, "REF_MOVE"))
    assert (await refuse(client, await sign_in(client, org.officer), "REF_MOVE", OTHER)).status_code == 200
    # A newer version, same lead unit: the tracking system's update keeps the unit's answer.
    await upsert(client, org, task(org, "REF_MOVE", version=2, name="Tên mới"))
    async with transaction() as session:
        kept = (await session.execute(select(Task).where(Task.code == "REF_MOVE"))).scalar_one()
    assert kept.name == "Tên mới" and kept.refusal_reason_code == "outside_authority"
    # Reassigned to another unit: a new window, no refusal.
    await upsert(client, org, task(org, "REF_MOVE", version=3, lead_unit=other.code, responsible_users=[]))
    async with transaction() as session:
        moved = (await session.execute(select(Task).where(Task.code == "REF_MOVE"))).scalar_one()
    assert moved.lead_unit_id == other.id
    assert (moved.refused_at, moved.refused_by, moved.refusal_reason_code, moved.refusal_reason) == (
        None,
    ) * 4


async def test_a_classified_refusal_pushes_no_reason(client, org, emulator, worker_ctx, use_rules):
    use_rules(open_sensitivity="public")
    token = await register_tracking_device(org.approver.id)
    await upsert(
        client,
        org,
        task(org, "MAT_REF", name="Phương án mật", classified=True),
        task(org, "OPEN_REF", name="Nhiệm vụ thường"),
    )
    headers = await sign_in(client, org.officer)
    secret = "Lý do mật không được gửi đi"
    assert (await refuse(client, headers, "MAT_REF", {**OTHER, "reason": secret})).status_code == 200
    assert (await refuse(client, headers, "OPEN_REF", {**OTHER, "reason": REASON})).status_code == 200
    await run_workers(worker_ctx)
    payloads = [
        json.dumps(r.as_json()["payload"], ensure_ascii=False) for r in emulator.log.find(token=token)
    ]
    assert len(payloads) == 2
    assert any(REASON in p for p in payloads)  # the open task's reason does travel (public rules)
    for payload in payloads:
        assert secret not in payload and "MAT_REF" not in payload and "Phương án mật" not in payload
    notes = {n.sensitivity: n for n in await tracking_notifications() if n.kind == "tracking.refused"}
    assert secret not in json.dumps(notes["classified"].body, ensure_ascii=False)
    async with transaction() as session:
        [row] = (
            await session.execute(
                select(AuditLog).where(
                    AuditLog.action == "tracking.task.refused",
                    AuditLog.object_id == str(await task_id("MAT_REF")),
                )
            )
        ).scalars()
    assert row.details["reason"] is None


async def test_a_confirmation_and_a_refusal_sent_together_give_one_answer(client, org):
    await upsert(client, org, task(org, "REF_RACE"))
    headers = await sign_in(client, org.officer)
    target = await task_id("REF_RACE")
    for _ in range(3):
        async with transaction() as session:
            await session.execute(
                update(Task)
                .where(Task.id == target)
                .values(confirmed_at=None, refused_at=None, refused_by=None, refusal_reason_code=None)
            )
        confirmed, refused = await concurrently(
            client.post(f"/v1/tracking/tasks/{target}/confirm", headers=headers),
            client.post(f"/v1/tracking/tasks/{target}/refuse", json=OTHER, headers=headers),
        )
        assert sorted([confirmed.status_code, refused.status_code]) == [200, 409]
        async with transaction() as session:
            stored = (await session.execute(select(Task).where(Task.id == target))).scalar_one()
        assert (stored.confirmed_at is None) != (stored.refused_at is None)


async def test_a_configured_standing_agency_is_told(client, org, use_rules):
    office = await make_unit(name="Văn phòng thường trực")
    approver = await make_account(role=Role.TASK_APPROVER, unit=office)
    await make_account(role=Role.TASK_OFFICER, unit=office)  # not an agency role: not told
    use_rules(standing_agency_unit_code=office.code)
    await sent_by_province(client, org, task(org, "REF_CONF"))
    assert (await refuse(client, await sign_in(client, org.officer), "REF_CONF", OTHER)).status_code == 200
    [note] = [n for n in await tracking_notifications() if n.kind == "tracking.refused"]
    # The configured standing agency replaces the root unit; the province assigned the task.
    assert {uuid.UUID(u) for u in note.audience["users"]} == {approver.id, org.leader.id}

"""Requests for an update or a correction (D-15): the standing agency asks, due on a working day;
the unit in charge answers once; both are notifications to act on; the sweep reminds before the
due day and escalates after it until the answer; a rejected report is such a request."""

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
    confirm_all,
    ledger,
    run_sender,
    run_sweep,
    set_clock,
    task,
    tick,
    tracking_notifications,
    upsert,
)
from tests.tracking.test_privacy import register_tracking_device
from tracking.models import Reminder, Task, UpdateRequest

ASK = {"kind": "update", "message": "Đề nghị báo cáo tiến độ triển khai quý IV"}
ANSWER = {"answer": "Đã hoàn thành 80% khối lượng; dự kiến xong trước 25/12"}


async def task_id(code: str) -> uuid.UUID:
    async with transaction() as session:
        found: uuid.UUID = (await session.execute(select(Task.id).where(Task.code == code))).scalar_one()
        return found


async def ask(
    client: httpx.AsyncClient, headers: dict[str, str], code: str, body: dict[str, Any] | None = None
) -> httpx.Response:
    return await client.post(
        f"/v1/tracking/tasks/{await task_id(code)}/requests", json=body or ASK, headers=headers
    )


async def answer(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    code: str,
    request_id: str,
    body: dict[str, Any] | None = None,
) -> httpx.Response:
    return await client.post(
        f"/v1/tracking/tasks/{await task_id(code)}/requests/{request_id}/answer",
        json=body or ANSWER,
        headers=headers,
    )


async def asked(client: httpx.AsyncClient, org: Org, code: str, **body: Any) -> dict[str, Any]:
    response = await ask(client, await sign_in(client, org.approver), code, {**ASK, **body})
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def audience(note: Any) -> set[uuid.UUID]:
    return {uuid.UUID(u) for u in note.audience["users"]}


async def test_the_standing_agency_asks_and_the_unit_is_told_in_its_inbox(client, org, emulator, worker_ctx):
    set_clock("2026-12-07 09:00:00")  # Monday
    await upsert(client, org, task(org, "UR_1"))
    body = await asked(client, org, "UR_1")
    # Three working days (the default): Thursday, due at the end of its working hours.
    assert body["due_date"] == "2026-12-10" and body["due_at"] == "2026-12-10T10:00:00Z"
    assert body["status"] == "open" and body["origin"] == "agency" and body["kind"] == "update"
    assert body["requested_by"] == str(org.approver.id) and body["answer"] is None

    [note] = [n for n in await tracking_notifications() if n.kind == "tracking.update_requested"]
    assert audience(note) == {org.officer.id}  # the task's responsible officer, nobody else
    assert note.priority == "high" and note.created_by_kind == "system"
    assert ASK["message"] in note.body["vi"] and "10/12/2026" in note.body["vi"]
    assert note.data == {
        "task_id": str(await task_id("UR_1")),
        "task_code": "UR_1",
        "request_id": body["id"],
        "request_kind": "update",
    }
    assert note.deep_link == f"chuong-tracking://tasks/{await task_id('UR_1')}/requests/{body['id']}"
    await run_workers(worker_ctx)
    inbox = await client.get(
        "/v1/inbox", params={"app": "tracking"}, headers=await sign_in(client, org.officer)
    )
    assert "tracking.update_requested" in [i["kind"] for i in inbox.json()["items"]]

    listed = await client.get(
        f"/v1/tracking/tasks/{await task_id('UR_1')}/requests", headers=await sign_in(client, org.officer)
    )
    assert listed.status_code == 200 and [r["id"] for r in listed.json()] == [body["id"]]
    async with transaction() as session:
        [row] = (
            await session.execute(select(AuditLog).where(AuditLog.action == "tracking.request.created"))
        ).scalars()
    assert row.actor_id == org.approver.id and row.details["request_id"] == body["id"]
    assert row.details["due_date"] == "2026-12-10" and row.details["notified"] == 1


async def test_without_responsible_people_the_lead_units_leaders_are_asked(client, org):
    set_clock("2026-12-07 09:00:00")
    await upsert(client, org, task(org, "UR_NOONE", responsible_users=[]))
    await asked(client, org, "UR_NOONE", kind="correction")
    [note] = [n for n in await tracking_notifications() if n.kind == "tracking.update_requested"]
    assert audience(note) == {org.leader.id}
    assert note.title["vi"] == "Yêu cầu chỉnh sửa báo cáo nhiệm vụ"


async def test_only_the_standing_agency_asks(client, org, use_rules):
    set_clock("2026-12-07 09:00:00")
    await upsert(client, org, task(org, "UR_WHO"))
    leader = await ask(client, await sign_in(client, org.central_leader), "UR_WHO")
    assert leader.status_code == 201  # the standing agency's leader may ask too
    for account in (org.leader, org.officer):  # they see the task but are not the standing agency
        denied = await ask(client, await sign_in(client, account), "UR_WHO")
        assert denied.status_code == 403 and denied.json()["error"]["code"] == "not_standing_agency"
    elsewhere = await make_unit(parent=org.central, name="Sở khác")
    stranger = await make_account(role=Role.TASK_APPROVER, unit=elsewhere)
    hidden = await ask(client, await sign_in(client, stranger), "UR_WHO")
    assert hidden.status_code == 404
    assert (await ask(client, org.system, "UR_WHO")).status_code == 403  # a connected system
    missing = await client.post(
        f"/v1/tracking/tasks/{uuid.uuid4()}/requests", json=ASK, headers=await sign_in(client, org.approver)
    )
    assert missing.status_code == 404

    # A configured standing agency outside the task's branch asks although it cannot list it.
    office = await make_unit(name="Văn phòng thường trực")
    office_approver = await make_account(role=Role.TASK_APPROVER, unit=office)
    use_rules(standing_agency_unit_code=office.code)
    assert (await ask(client, await sign_in(client, office_approver), "UR_WHO")).status_code == 201
    root = await ask(client, await sign_in(client, org.approver), "UR_WHO")
    assert root.status_code == 403  # the root unit's approver is no longer the standing agency
    listed = await client.get(
        f"/v1/tracking/tasks/{await task_id('UR_WHO')}/requests",
        headers=await sign_in(client, office_approver),
    )
    assert listed.status_code == 200 and len(listed.json()) == 2


async def test_due_dates_fall_on_working_days(client, org):
    set_clock("2026-12-11 16:00:00")  # Friday afternoon
    await upsert(client, org, task(org, "UR_DUE"))
    headers = await sign_in(client, org.approver)
    one = await ask(client, headers, "UR_DUE", {**ASK, "working_days": 1})
    assert one.json()["due_date"] == "2026-12-14"  # Monday, over the weekend
    named = await ask(client, headers, "UR_DUE", {**ASK, "due_date": "2026-12-16"})
    assert named.status_code == 201 and named.json()["due_date"] == "2026-12-16"
    today = await ask(client, headers, "UR_DUE", {**ASK, "due_date": "2026-12-11"})
    assert today.status_code == 201  # before today's close
    # Tết 2027 (4–10 February): five working days from Monday 1 February skip it.
    set_clock("2027-02-01 09:00:00")
    headers = await sign_in(client, org.approver)  # a fresh token at the new time
    tet = await ask(client, headers, "UR_DUE", {**ASK, "working_days": 5})
    assert tet.json()["due_date"] == "2027-02-15"
    refused = {
        "2027-02-06": "due_date_not_working_day",  # a Saturday
        "2027-02-08": "due_date_not_working_day",  # Tết
        "2027-01-29": "due_date_past",
        "2028-06-01": "due_date_too_far",
    }
    for day, code in refused.items():
        response = await ask(client, headers, "UR_DUE", {**ASK, "due_date": day})
        assert response.status_code == 422 and response.json()["error"]["code"] == code, (day, response.text)
    set_clock("2027-02-01 17:30:00")  # after today's close, today is past
    headers = await sign_in(client, org.approver)
    late = await ask(client, headers, "UR_DUE", {**ASK, "due_date": "2027-02-01"})
    assert late.status_code == 422 and late.json()["error"]["code"] == "due_date_past"


async def test_bad_bodies_are_422(client, org):
    await upsert(client, org, task(org, "UR_BAD"))
    headers = await sign_in(client, org.approver)
    for bad in (
        {"kind": "nag", "message": "x"},
        {"kind": "update", "message": "   "},
        {"kind": "update", "message": "x" * 4001},
        {"kind": "update", "message": "nul \x00 byte"},
        {"kind": "update", "message": "lone \udc80"},
        {"kind": "update", "message": "x", "working_days": 0},
        {"kind": "update", "message": "x", "working_days": 61},
        {"kind": "update", "message": "x", "working_days": 2, "due_date": "2027-03-01"},
        {"kind": "update", "message": "x", "due_date": "0001-01-01"},
        {"kind": "update", "message": "x", "requested_by": str(uuid.uuid4())},
    ):
        response = await client.post(
            f"/v1/tracking/tasks/{await task_id('UR_BAD')}/requests",
            content=json.dumps(bad).encode(),
            headers={**headers, "Content-Type": "application/json"},
        )
        assert response.status_code == 422, (bad, response.text)
        assert set(response.json()["error"]) >= {"code", "message", "details"}
    async with transaction() as session:
        assert (await session.execute(select(UpdateRequest))).first() is None


async def test_the_unit_answers_once_and_the_agency_is_told(client, org, emulator, worker_ctx):
    set_clock("2026-12-07 09:00:00")
    await upsert(client, org, task(org, "UR_ANS"))
    request = await asked(client, org, "UR_ANS")
    set_clock("2026-12-08 10:00:00")
    officer = await sign_in(client, org.officer)
    body = {**ANSWER, "result_status": "in_progress", "difficulties": "Thiếu kinh phí"}
    response = await answer(client, officer, "UR_ANS", request["id"], body)
    assert response.status_code == 200, response.text
    done = response.json()
    assert done["status"] == "answered" and done["answer"] == ANSWER["answer"]
    assert done["answered_by"] == str(org.officer.id) and done["answered_at"].startswith("2026-12-08T03:00")
    assert done["answer_result_status"] == "in_progress" and done["answer_difficulties"] == "Thiếu kinh phí"
    async with transaction() as session:
        stored = (await session.execute(select(Task).where(Task.code == "UR_ANS"))).scalar_one()
    assert stored.difficulties is None  # the tracking system's record is not overwritten

    [note] = [n for n in await tracking_notifications() if n.kind == "tracking.update_answered"]
    # The standing agency's approver (who asked) and leader.
    assert audience(note) == {org.approver.id, org.central_leader.id}
    assert ANSWER["answer"] in note.body["vi"] and note.data["request_id"] == request["id"]
    await run_workers(worker_ctx)
    inbox = await client.get(
        "/v1/inbox", params={"app": "tracking"}, headers=await sign_in(client, org.approver)
    )
    assert "tracking.update_answered" in [i["kind"] for i in inbox.json()["items"]]

    again = await answer(client, officer, "UR_ANS", request["id"], {"answer": "Lần hai"})
    assert again.status_code == 409 and again.json()["error"]["code"] == "request_already_answered"
    notes = [n for n in await tracking_notifications() if n.kind == "tracking.update_answered"]
    assert len(notes) == 1
    async with transaction() as session:
        [row] = (
            await session.execute(select(AuditLog).where(AuditLog.action == "tracking.request.answered"))
        ).scalars()
    assert row.actor_id == org.officer.id and row.details["late"] is False
    assert row.details["answer"] == ANSWER["answer"] and row.details["notified"] == 2


async def test_nobody_answers_someone_elses_request(client, org):
    set_clock("2026-12-07 09:00:00")
    partner = await make_unit(parent=org.central, name="Sở phối hợp")
    partner_officer = await make_account(role=Role.TASK_OFFICER, unit=partner)
    await upsert(client, org, task(org, "UR_MINE", cooperating_units=[partner.code]), task(org, "UR_OTHER"))
    request = await asked(client, org, "UR_MINE")
    coop = await answer(client, await sign_in(client, partner_officer), "UR_MINE", request["id"])
    assert coop.status_code == 403 and coop.json()["error"]["code"] == "not_lead_unit"
    stranger = await make_account(role=Role.TASK_OFFICER, unit=await make_unit(parent=org.central))
    assert (
        await answer(client, await sign_in(client, stranger), "UR_MINE", request["id"])
    ).status_code == 404
    officer = await sign_in(client, org.officer)
    # The request under another task's id (which the officer may answer for) is not found.
    wrong_task = await answer(client, officer, "UR_OTHER", request["id"])
    assert wrong_task.status_code == 404
    assert (await answer(client, officer, "UR_MINE", str(uuid.uuid4()))).status_code == 404
    leader = await answer(client, await sign_in(client, org.leader), "UR_MINE", request["id"])
    assert leader.status_code == 403  # leaders read tasks; officers write them (tasks:write)
    assert (await answer(client, org.system, "UR_MINE", request["id"])).status_code == 403
    for bad in ({"answer": " "}, {"answer": "x" * 4001}, {"answer": "ok", "result_status": "finished"}):
        assert (await answer(client, officer, "UR_MINE", request["id"], bad)).status_code == 422
    async with transaction() as session:
        stored = (await session.execute(select(UpdateRequest))).scalar_one()
    assert stored.status == "open" and stored.answer is None


async def test_two_answers_sent_together_give_one(client, org):
    set_clock("2026-12-07 09:00:00")
    await upsert(client, org, task(org, "UR_RACE"))
    request = await asked(client, org, "UR_RACE")
    officer = await sign_in(client, org.officer)
    officer2 = await sign_in(client, org.officer2)  # the same unit: both may answer for it
    for attempt in range(3):
        async with transaction() as session:
            await session.execute(
                update(UpdateRequest)
                .where(UpdateRequest.id == uuid.UUID(request["id"]))
                .values(status="open", answer=None, answered_at=None, answered_by=None)
            )
        first, second = await concurrently(
            answer(client, officer, "UR_RACE", request["id"], {"answer": f"Một {attempt}"}),
            answer(client, officer2, "UR_RACE", request["id"], {"answer": f"Hai {attempt}"}),
        )
        assert sorted([first.status_code, second.status_code]) == [200, 409], (first.text, second.text)
        winner = first if first.status_code == 200 else second
        async with transaction() as session:
            stored = (await session.execute(select(UpdateRequest))).scalar_one()
        assert stored.answer == winner.json()["answer"]
    notes = [n for n in await tracking_notifications() if n.kind == "tracking.update_answered"]
    assert len(notes) == 3  # one per round: the loser sent nothing


def request_rows(rows: list[Reminder]) -> list[str]:
    """The request reminders' steps: ``b1`` (before), ``w2:unit_leaders`` (after), no dates."""
    return sorted({r.occurrence.rsplit(":", 1)[0] for r in rows if r.rule == "request"})


async def test_reminders_before_the_due_day_then_escalation_on_working_days(client, org):
    set_clock("2026-12-07 09:00:00")  # Monday; due Thursday 10 December
    await upsert(client, org, task(org, "UR_REM"))
    await confirm_all()
    request = await asked(client, org, "UR_REM")
    subject = uuid.UUID(request["id"])
    expected = {
        "2026-12-07 10:00:30": [],
        "2026-12-09 08:00:30": ["b1"],  # one working day before
        "2026-12-10 08:00:30": ["b0"],  # the due day
        "2026-12-10 16:59:00": [],
        "2026-12-11 08:00:30": ["w1:responsible"],
        "2026-12-12 09:00:00": [],  # Saturday
        "2026-12-14 08:00:30": ["w2:unit_leaders"],
        "2026-12-15 08:00:30": ["w3:standing_agency"],
        "2026-12-16 08:00:30": [],
    }
    seen: list[Reminder] = []
    for moment, occurrences in expected.items():
        set_clock(moment)
        rows = await tick()
        assert request_rows(rows) == occurrences, moment
        seen += rows
    by_step: dict[str, set[uuid.UUID]] = {r.occurrence.split(":")[0]: set() for r in seen}
    for r in seen:
        by_step[r.occurrence.split(":")[0]].add(r.user_id)
        assert r.subject_id == subject and r.status == "sent"
    assert by_step["b1"] == by_step["w1"] == {org.officer.id}
    assert by_step["w2"] == {org.leader.id}
    assert by_step["w3"] == {org.approver.id, org.central_leader.id}
    reminders = [n for n in await tracking_notifications() if n.kind == "tracking.reminder.request"]
    titles = [n.title["vi"] for n in reminders]
    assert titles[0] == "Nhắc hạn trả lời yêu cầu cập nhật"
    assert "Cảnh báo yêu cầu chưa được trả lời (cơ quan thường trực)" in titles
    link = f"chuong-tracking://tasks/{await task_id('UR_REM')}/requests/{subject}"
    assert {n.deep_link for n in reminders} == {link}
    assert any("UR_REM" in n.body["vi"] and "10/12/2026" in n.body["vi"] for n in reminders)


async def test_a_request_asked_after_a_reminders_moment_does_not_get_it(client, org):
    set_clock("2026-12-07 09:00:00")
    await upsert(client, org, task(org, "UR_LATE"))
    await confirm_all()
    await asked(client, org, "UR_LATE", working_days=1)  # due tomorrow: "one day before" was 08:00
    set_clock("2026-12-07 10:00:30")
    assert request_rows(await tick()) == []
    set_clock("2026-12-08 08:00:30")
    assert request_rows(await tick()) == ["b0"]


async def test_the_answer_stops_the_reminders_even_those_already_swept(client, org):
    set_clock("2026-12-07 09:00:00")
    await upsert(client, org, task(org, "UR_STOP"), task(org, "UR_GOES"))
    await confirm_all()
    stop = await asked(client, org, "UR_STOP")
    goes = await asked(client, org, "UR_GOES")
    set_clock("2026-12-09 08:00:30")
    await run_sweep()  # both b1 rows written, not yet sent
    assert (
        await answer(client, await sign_in(client, org.officer), "UR_STOP", stop["id"])
    ).status_code == 200
    await run_sender()
    rows = {r.subject_id: r.status for r in await ledger() if r.rule == "request"}
    assert rows == {uuid.UUID(stop["id"]): "dropped", uuid.UUID(goes["id"]): "sent"}
    for moment in ("2026-12-10 08:00:30", "2026-12-11 08:00:30", "2026-12-14 08:00:30"):
        set_clock(moment)
        assert {r.subject_id for r in await tick() if r.rule == "request"} == {uuid.UUID(goes["id"])}


async def test_a_rejected_report_is_a_correction_request(client, org):
    set_clock("2026-12-07 09:00:00")
    await upsert(client, org, task(org, "UR_REP", report={"status": "submitted"}))
    reason = "Thiếu số liệu quý IV"
    await upsert(client, org, task(org, "UR_REP", version=2, report={"status": "rejected", "reason": reason}))
    async with transaction() as session:
        [request] = (await session.execute(select(UpdateRequest))).scalars()
    assert (request.kind, request.origin, request.message, request.status) == (
        "correction",
        "report_rejected",
        reason,
        "open",
    )
    assert request.requested_by is None and request.due_date.isoformat() == "2026-12-10"
    [note] = [n for n in await tracking_notifications() if n.kind == "tracking.report_rejected"]
    assert audience(note) == {org.officer.id} and note.priority == "high"
    assert reason in note.body["vi"] and "Hạn chỉnh sửa: 10/12/2026" in note.body["vi"]
    assert note.data["request_id"] == str(request.id) and note.data["request_kind"] == "correction"
    assert not [n for n in await tracking_notifications() if n.kind == "tracking.update_requested"]

    # A replay, or a newer version with the same rejection, opens nothing more.
    await upsert(client, org, task(org, "UR_REP", version=2, report={"status": "rejected", "reason": reason}))
    await upsert(client, org, task(org, "UR_REP", version=3, report={"status": "rejected", "reason": reason}))
    # Rejected anew with another reason: the old request is closed and a new one opened.
    await upsert(
        client, org, task(org, "UR_REP", version=4, report={"status": "rejected", "reason": "Sai biểu mẫu"})
    )
    async with transaction() as session:
        rows = list(
            (
                await session.execute(
                    select(UpdateRequest).order_by(UpdateRequest.created_at, UpdateRequest.message)
                )
            ).scalars()
        )
    assert sorted((r.message, r.status) for r in rows) == [("Sai biểu mẫu", "open"), (reason, "closed")]
    closed = next(r for r in rows if r.status == "closed")
    late = await answer(client, await sign_in(client, org.officer), "UR_REP", str(closed.id))
    assert late.status_code == 409 and late.json()["error"]["code"] == "request_closed"
    # The unit answers the open one; the standing agency hears of it.
    current = next(r for r in rows if r.status == "open")
    assert (
        await answer(client, await sign_in(client, org.officer), "UR_REP", str(current.id))
    ).status_code == 200
    [told] = [n for n in await tracking_notifications() if n.kind == "tracking.update_answered"]
    assert audience(told) == {org.approver.id, org.central_leader.id}
    assert told.title["vi"] == "Tỉnh ủy đã trả lời yêu cầu chỉnh sửa"


async def test_a_report_sent_again_closes_the_open_correction(client, org):
    set_clock("2026-12-07 09:00:00")
    await upsert(client, org, task(org, "UR_RE", report={"status": "rejected", "reason": "Thiếu phụ lục"}))
    await confirm_all()
    await upsert(client, org, task(org, "UR_RE", version=2, report={"status": "submitted"}))
    async with transaction() as session:
        [request] = (await session.execute(select(UpdateRequest))).scalars()
    assert request.status == "closed" and request.closed_at is not None
    set_clock("2026-12-09 08:00:30")
    assert request_rows(await tick()) == []


async def test_a_rejection_without_responsible_people_reaches_the_units_leaders(client, org):
    set_clock("2026-12-07 09:00:00")
    await upsert(
        client,
        org,
        task(org, "UR_LEAD", responsible_users=[], report={"status": "rejected", "reason": "Thiếu số liệu"}),
    )
    [note] = [n for n in await tracking_notifications() if n.kind == "tracking.report_rejected"]
    assert audience(note) == {org.leader.id}


async def test_a_refused_task_takes_no_request(client, org):
    set_clock("2026-12-07 09:00:00")
    await upsert(client, org, task(org, "UR_REF"))
    refused = await client.post(
        f"/v1/tracking/tasks/{await task_id('UR_REF')}/refuse",
        json={"code": "wrong_assignment", "reason": "Không thuộc đơn vị"},
        headers=await sign_in(client, org.officer),
    )
    assert refused.status_code == 200
    response = await ask(client, await sign_in(client, org.approver), "UR_REF")
    assert response.status_code == 409 and response.json()["error"]["code"] == "task_refused"


async def test_classified_requests_and_answers_carry_nothing_of_the_task(
    client, org, emulator, worker_ctx, use_rules
):
    use_rules(open_sensitivity="public")
    set_clock("2026-12-07 09:00:00")
    officer_token = await register_tracking_device(org.officer.id)
    approver_token = await register_tracking_device(org.approver.id)
    await upsert(client, org, task(org, "MAT_UR", name="Phương án mật", classified=True))
    await confirm_all()
    secret_ask = "Đề nghị báo cáo phương án bảo vệ mục tiêu mật"
    secret_answer = "Đã bố trí lực lượng tại mục tiêu mật"
    request = await asked(client, org, "MAT_UR", message=secret_ask)
    officer = await sign_in(client, org.officer)
    refused = await answer(
        client, officer, "MAT_UR", request["id"], {"answer": secret_answer, "description": "x"}
    )
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "classified_content"
    set_clock("2026-12-09 08:00:30")
    assert request_rows(await tick()) == ["b1"]
    officer = await sign_in(client, org.officer)
    ok = await answer(
        client, officer, "MAT_UR", request["id"], {"answer": secret_answer, "result_status": "done"}
    )
    assert ok.status_code == 200
    await run_workers(worker_ctx)
    payloads = [
        json.dumps(r.as_json()["payload"], ensure_ascii=False)
        for token in (officer_token, approver_token)
        for r in emulator.log.find(token=token)
    ]
    assert len(payloads) >= 3  # the request, its reminder, the answer
    for payload in payloads:
        for secret in (secret_ask, secret_answer, "MAT_UR", "Phương án mật", request["id"]):
            assert secret not in payload, payload
    notes = [n for n in await tracking_notifications() if n.kind != "tracking.assigned"]
    assert {n.sensitivity for n in notes} == {"classified"}
    for n in notes:
        shown = json.dumps([n.title, n.body, n.data, n.deep_link], ensure_ascii=False)
        assert secret_ask not in shown and secret_answer not in shown and "MAT_UR" not in shown
    for account in (org.officer, org.approver):
        headers = await sign_in(client, account)
        for item in (await client.get("/v1/inbox", params={"app": "tracking"}, headers=headers)).json()[
            "items"
        ]:
            full = (await client.get(f"/v1/inbox/{item['id']}", headers=headers)).json()
            assert secret_ask not in json.dumps(full, ensure_ascii=False)
            assert secret_answer not in json.dumps(full, ensure_ascii=False)
    async with transaction() as session:
        rows = (
            await session.execute(select(AuditLog).where(AuditLog.action.like("tracking.request.%")))
        ).scalars()
        for row in rows:
            assert secret_ask not in json.dumps(row.details, ensure_ascii=False)
            assert secret_answer not in json.dumps(row.details, ensure_ascii=False)


async def test_a_refused_task_stops_nagging_the_unit_but_the_standing_agency_sees_it(client, org):
    # Deadline Monday 14 December 2026; the unit refuses it on Monday 7 December.
    set_clock("2026-12-07 08:30:00")
    await upsert(
        client, org, task(org, "UR_NAG", deadline="2026-12-14"), task(org, "UR_KEPT", deadline="2026-12-14")
    )
    await confirm_all()
    async with transaction() as session:
        await session.execute(update(Task).where(Task.code == "UR_NAG").values(confirmed_at=None))
    refused = await client.post(
        f"/v1/tracking/tasks/{await task_id('UR_NAG')}/refuse",
        json={"code": "outside_authority", "reason": "Thuộc Sở Y tế"},
        headers=await sign_in(client, org.officer),
    )
    assert refused.status_code == 200
    nag, kept = await task_id("UR_NAG"), await task_id("UR_KEPT")
    seen: list[Reminder] = []
    for moment in (
        "2026-12-09 08:00:30",  # d3
        "2026-12-11 08:00:30",  # d1
        "2026-12-14 08:00:30",  # d0
        "2026-12-15 08:00:30",  # w1 → responsible
        "2026-12-16 08:00:30",
        "2026-12-17 08:00:30",
        "2026-12-18 08:00:30",  # w4 → unit leaders
        "2026-12-21 08:00:30",  # w5 → standing agency
    ):
        set_clock(moment)
        seen += await tick()
    of_kept = sorted(r.occurrence.split(":")[0] for r in seen if r.subject_id == kept)
    assert of_kept == ["d0", "d1", "d3", "w1", "w2", "w3", "w4", "w5", "w5"]  # w5: approver and leader
    of_refused = [r for r in seen if r.subject_id == nag]
    assert [r.occurrence.split(":")[:2] for r in of_refused] == [["w5", "standing_agency"]] * 2
    assert {r.user_id for r in of_refused} == {org.approver.id, org.central_leader.id}

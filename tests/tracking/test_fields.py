"""Fields of responsibility (D-16): the catalogue and leaders' fields as data kept by admins, a
task's field from intake, and every leader-facing view and warning reaching a leader who sees a
task only through a field (not through their unit subtree)."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from auth.audit.models import AuditLog
from auth.models import Unit
from auth.roles import Role
from core import clock
from core.db import transaction
from tests.console.support import console_sign_in
from tests.support.factories import Account, make_account, make_unit, sign_in
from tests.tracking.helpers import (
    Org,
    confirm_all,
    make_api_client,
    run_sweep,
    set_clock,
    task,
    tick,
    tracking_notifications,
    upsert,
)
from tracking import sender
from tracking.calendar import load_calendar
from tracking.models import Task
from tracking.rules import get_rules


@dataclass
class Fields:
    ministry: Unit
    field_leader: Account  # a leader of another branch, in charge of KHCN
    other_leader: Account  # a leader of the same branch, in charge of nothing
    code: str


async def create_field(client: httpx.AsyncClient, headers: dict[str, str], code: str) -> dict[str, Any]:
    response = await client.post(
        "/v1/tracking/fields",
        json={"code": code, "name_vi": "Khoa học, công nghệ", "name_en": "Science and technology"},
        headers=headers,
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def assign(
    client: httpx.AsyncClient, admin_headers: dict[str, str], leader: Account, codes: list[str]
) -> httpx.Response:
    return await client.put(
        f"/v1/tracking/leaders/{leader.id}/fields", json={"fields": codes}, headers=admin_headers
    )


@pytest.fixture
async def fields(client: httpx.AsyncClient, org: Org) -> Fields:
    admin = await sign_in(client, org.admin)
    code = f"KHCN{uuid.uuid4().hex[:6]}"
    await create_field(client, admin, code)
    ministry = await make_unit(parent=org.central, name="Bộ Khoa học và Công nghệ")
    found = Fields(
        ministry=ministry,
        field_leader=await make_account(role=Role.LEADER, unit=ministry),
        other_leader=await make_account(role=Role.LEADER, unit=ministry),
        code=code,
    )
    response = await assign(client, admin, found.field_leader, [code])
    assert response.status_code == 200, response.text
    return found


async def task_id(code: str) -> uuid.UUID:
    async with transaction() as session:
        found: uuid.UUID = (await session.execute(select(Task.id).where(Task.code == code))).scalar_one()
        return found


async def audit_rows(action: str) -> list[AuditLog]:
    async with transaction() as session:
        rows = await session.execute(select(AuditLog).where(AuditLog.action == action).order_by(AuditLog.seq))
        return list(rows.scalars())


async def listed(client: httpx.AsyncClient, headers: dict[str, str], **params: str) -> set[str]:
    response = await client.get("/v1/tracking/tasks", params={"scope": "units", **params}, headers=headers)
    assert response.status_code == 200, response.text
    return {t["code"] for t in response.json()["items"]}


async def test_system_admins_keep_the_catalogue_and_admins_put_leaders_in_charge(client, org):
    admin = await sign_in(client, org.admin)
    code = f"QP{uuid.uuid4().hex[:6]}"
    created = await create_field(client, admin, code)
    again = await client.post(
        "/v1/tracking/fields", json={"code": code, "name_vi": "x", "name_en": "x"}, headers=admin
    )
    assert again.status_code == 409 and again.json()["error"]["code"] == "field_code_taken"
    unit_admin = await make_account(role=Role.UNIT_ADMIN, unit=org.central)
    for account in (unit_admin, org.central_leader):
        refused = await client.post(
            "/v1/tracking/fields",
            json={"code": "X1", "name_vi": "x", "name_en": "x"},
            headers=await sign_in(client, account),
        )
        assert refused.status_code == 403, refused.text
    for bad in (
        {"code": "has space", "name_vi": "x", "name_en": "x"},
        {"code": "X" * 65, "name_vi": "x", "name_en": "x"},
        {"code": "OK1", "name_vi": "x" * 256, "name_en": "x"},
        {"code": "OK2", "name_vi": "   ", "name_en": "x"},
        {"code": "OK3", "name_vi": "a\x00b", "name_en": "x"},
    ):
        response = await client.post("/v1/tracking/fields", json=bad, headers=admin)
        assert response.status_code == 422, bad
    renamed = await client.patch(
        f"/v1/tracking/fields/{created['id']}",
        json={"name_vi": "Quốc phòng, an ninh", "name_en": "Defence and security"},
        headers=admin,
    )
    assert renamed.status_code == 200 and renamed.json()["name_vi"] == "Quốc phòng, an ninh"
    missing = await client.patch(
        f"/v1/tracking/fields/{uuid.uuid4()}", json={"name_vi": "a", "name_en": "b"}, headers=admin
    )
    assert missing.status_code == 404
    # Any signed-in account reads the catalogue.
    catalogue = await client.get("/v1/tracking/fields", headers=await sign_in(client, org.officer))
    assert code in {f["code"] for f in catalogue.json()}

    assert (await assign(client, admin, org.leader, [code, code])).json()["fields"][0]["code"] == code
    assert (await assign(client, admin, org.officer, [code])).json()["error"]["code"] == "not_a_leader"
    assert (await assign(client, admin, org.leader, ["NO_SUCH"])).json()["error"]["code"] == "unknown_fields"
    too_many = await assign(client, admin, org.leader, [f"F{i}" for i in range(201)])
    assert too_many.status_code == 422
    # A unit admin of the province cannot reach a leader of the centre (404, not confirmed).
    province_admin = await sign_in(client, await make_account(role=Role.UNIT_ADMIN, unit=org.province))
    assert (await assign(client, province_admin, org.central_leader, [code])).status_code == 404
    assert (await assign(client, province_admin, org.leader, [])).status_code == 200
    read = await client.get(f"/v1/tracking/leaders/{org.leader.id}/fields", headers=admin)
    assert read.status_code == 200 and read.json()["fields"] == []
    # Audited: the catalogue's changes and each change of a leader's fields (not the no-ops).
    assert [r.details["code"] for r in await audit_rows("tracking.field.created")][-1] == code
    assert len(await audit_rows("tracking.field.renamed")) >= 1
    changes = [
        r for r in await audit_rows("tracking.leader_fields.changed") if r.object_id == str(org.leader.id)
    ]
    assert [(len(r.details["added"]), len(r.details["removed"])) for r in changes] == [(1, 0), (0, 1)]


async def test_intake_sets_the_field_keeps_it_when_absent_and_clears_it_on_null(client, org, fields):
    unknown = await upsert(client, org, task(org, "FI_X", field="NOPE"))
    assert unknown.status_code == 422 and unknown.json()["error"]["code"] == "unknown_fields"
    assert (await upsert(client, org, task(org, "FI_1", field=fields.code))).status_code == 200
    leader = await sign_in(client, fields.field_leader)
    assert await listed(client, leader) == {"FI_1"}
    # A sender that knows no fields (no key) keeps the field; null clears it.
    await upsert(client, org, task(org, "FI_1", version=2, name="Tên mới"))
    assert await listed(client, leader) == {"FI_1"}
    await upsert(client, org, task(org, "FI_1", version=3, field=None))
    assert await listed(client, leader) == set()
    # The connected system that may edit the task sets the field on its own too (audited).
    task_uuid = await task_id("FI_1")
    put = await client.put(
        f"/v1/tracking/tasks/{task_uuid}/field", json={"field": fields.code}, headers=org.system
    )
    assert put.status_code == 200 and put.json()["field_id"] is not None
    assert await listed(client, leader) == {"FI_1"}
    assert [r.details["code"] for r in await audit_rows("tracking.task.field_changed")] == ["FI_1"]
    # Another unit's connected system, a person, an unknown task: refused.
    elsewhere = await make_unit(name="Tỉnh ủy khác")
    foreign_admin = await make_account(role=Role.SYSTEM_ADMIN, unit=elsewhere)
    foreign_key = await make_api_client(client, foreign_admin, elsewhere, ["tracking:write"])
    foreign = await client.put(
        f"/v1/tracking/tasks/{task_uuid}/field",
        json={"field": None},
        headers={"Authorization": f"Bearer {foreign_key}"},
    )
    assert foreign.status_code == 404
    person = await client.put(f"/v1/tracking/tasks/{task_uuid}/field", json={"field": None}, headers=leader)
    assert person.status_code == 403
    ghost = await client.put(
        f"/v1/tracking/tasks/{uuid.uuid4()}/field", json={"field": None}, headers=org.system
    )
    assert ghost.status_code == 404


async def test_a_leader_sees_a_task_only_through_a_field_in_lists_counts_and_the_task(client, org, fields):
    await upsert(
        client,
        org,
        task(org, "F_FIELD", field=fields.code, deadline="2026-12-01"),
        task(org, "F_PLAIN", deadline="2026-12-01"),
    )
    leader = await sign_in(client, fields.field_leader)
    other = await sign_in(client, fields.other_leader)
    assert await listed(client, leader) == {"F_FIELD"}
    assert await listed(client, leader, deadline_status="overdue") == {"F_FIELD"}
    assert await listed(client, leader, unit_id=str(org.province.id)) == {"F_FIELD"}
    assert await listed(client, other) == set()
    field_task, plain_task = await task_id("F_FIELD"), await task_id("F_PLAIN")
    assert (await client.get(f"/v1/tracking/tasks/{field_task}", headers=leader)).status_code == 200
    assert (await client.get(f"/v1/tracking/tasks/{plain_task}", headers=leader)).status_code == 404
    assert (await client.get(f"/v1/tracking/tasks/{field_task}", headers=other)).status_code == 404
    counts = (await client.get("/v1/tracking/tasks/counts", headers=leader)).json()
    assert counts == [{"unit_id": str(org.province.id), "deadline_status": "overdue", "count": 1}]
    assert (await client.get("/v1/tracking/tasks/counts", headers=other)).json() == []
    # The province's own leader still sees both through the subtree.
    assert await listed(client, await sign_in(client, org.leader)) == {"F_FIELD", "F_PLAIN"}

    # A delegate of the field leader (D-24) sees through the leader's fields, no further.
    assistant = await make_account(role=Role.MEMBER, unit=fields.ministry)
    expires = (clock.utcnow() + dt.timedelta(days=3)).isoformat()
    granted = await client.post(
        "/v1/delegations",
        json={"delegate_id": str(assistant.id), "permissions": ["tasks:read"], "expires_at": expires},
        headers=leader,
    )
    assert granted.status_code == 201, granted.text
    delegate = {**await sign_in(client, assistant), "X-On-Behalf-Of": granted.json()["id"]}
    assert await listed(client, delegate) == {"F_FIELD"}
    assert (await client.get(f"/v1/tracking/tasks/{plain_task}", headers=delegate)).status_code == 404

    # Taking the field away takes the task away, for the leader and the delegate at once.
    await assign(client, await sign_in(client, org.admin), fields.field_leader, [])
    assert await listed(client, leader) == set()
    assert await listed(client, delegate) == set()
    assert (await client.get(f"/v1/tracking/tasks/{field_task}", headers=leader)).status_code == 404


async def test_a_leader_moved_to_another_role_loses_the_reach_of_their_fields(client, org, fields):
    await upsert(client, org, task(org, "F_ROLE", field=fields.code))
    async with transaction() as session:
        from auth.models import User

        user = await session.get(User, fields.field_leader.id)
        assert user is not None
        user.role = Role.TASK_APPROVER.value
    approver = await sign_in(client, fields.field_leader)
    assert await listed(client, approver) == set()


async def test_console_pages_show_a_field_leader_the_field_tasks(app, org, fields, client):
    await upsert(
        client,
        org,
        task(org, "C_FIELD", field=fields.code, deadline="2026-12-01"),
        task(org, "C_PLAIN", deadline="2026-12-01"),
    )
    transport = httpx.ASGITransport(app=app, client=("203.0.113.20", 52000))
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as console:
        await console_sign_in(console, fields.field_leader)
        dashboard = await console.get("/console/tracking")
        assert (
            dashboard.status_code == 200 and "C_FIELD" in dashboard.text and "C_PLAIN" not in dashboard.text
        )
        tasks = await console.get("/console/tracking/tasks")
        assert "C_FIELD" in tasks.text and "C_PLAIN" not in tasks.text
        assert (await console.get(f"/console/tracking/tasks/{await task_id('C_FIELD')}")).status_code == 200
        assert (await console.get(f"/console/tracking/tasks/{await task_id('C_PLAIN')}")).status_code == 404


async def test_warnings_and_escalations_reach_the_leaders_in_charge_of_the_field(
    client, org, fields, use_rules
):
    use_rules(
        deadline_offsets=[0],
        overdue_steps=[{"after_working_days": 1, "to": "unit_leaders"}],
    )
    # Without responsible people the deadline reminder goes to the leaders accountable for it.
    await upsert(
        client,
        org,
        task(org, "W_FIELD", field=fields.code, responsible_users=[], deadline="2026-12-14"),
        task(org, "W_PLAIN", responsible_users=[], deadline="2026-12-14"),
    )
    await confirm_all()
    set_clock("2026-12-14 08:00:30")
    rows = await tick()
    by_task = {(r.subject_id, r.user_id) for r in rows}
    field_task, plain_task = await task_id("W_FIELD"), await task_id("W_PLAIN")
    assert by_task == {
        (field_task, org.leader.id),
        (field_task, fields.field_leader.id),
        (plain_task, org.leader.id),
    }
    set_clock("2026-12-15 08:00:30")
    rows = await tick()
    assert {(r.subject_id, r.user_id) for r in rows} == by_task
    assert {r.rule for r in rows} == {"overdue"}
    assert fields.other_leader.id not in {r.user_id for r in rows}


async def test_the_confirm_window_escalates_to_the_field_leaders(client, org, fields):
    set_clock("2027-04-19 08:00:00")
    await upsert(client, org, task(org, "CF_FIELD", field=fields.code, deadline="2027-06-30"))
    set_clock("2027-04-19 16:00:30")
    rows = await tick()
    expiry = {r.user_id for r in rows if r.occurrence.startswith("expiry")}
    assert expiry == {org.leader.id, fields.field_leader.id}


async def test_a_field_leaders_digest_lists_the_field_tasks(client, org, fields, use_rules):
    use_rules(deadline_offsets=[0])
    await upsert(
        client,
        org,
        *[
            task(org, f"DGF_{i}", field=fields.code, responsible_users=[], deadline="2026-12-14")
            for i in range(2)
        ],
    )
    await confirm_all()
    set_clock("2026-12-14 07:00:00")
    leader = await sign_in(client, fields.field_leader)
    assert (
        await client.put("/v1/tracking/preferences", json={"daily_digest": True}, headers=leader)
    ).status_code == 200
    set_clock("2026-12-14 08:00:30")
    await run_sweep()
    async with transaction() as session:
        calendar = await load_calendar(session)
        assert (
            await sender.send_digests(session, now=clock.utcnow(), calendar=calendar, rules=get_rules()) == 1
        )
    [digest] = [n for n in await tracking_notifications() if n.kind == "tracking.digest"]
    assert digest.audience["users"] == [str(fields.field_leader.id)]
    assert "DGF_0" in digest.body["vi"] and "DGF_1" in digest.body["vi"]


async def test_classified_tasks_show_a_field_leader_only_their_status(client, org, fields, use_rules):
    use_rules(deadline_offsets=[0], open_sensitivity="public")
    await upsert(
        client,
        org,
        task(
            org,
            "MAT_F",
            name="Phương án mật",
            classified=True,
            field=fields.code,
            responsible_users=[],
            deadline="2026-12-14",
        ),
    )
    leader = await sign_in(client, fields.field_leader)
    [item] = (await client.get("/v1/tracking/tasks", params={"scope": "units"}, headers=leader)).json()[
        "items"
    ]
    assert item["classified"] and item["description"] is None and item["deadline_status"]
    await confirm_all()
    set_clock("2026-12-14 08:00:30")
    await tick()
    pushes = [n for n in await tracking_notifications() if str(fields.field_leader.id) in n.audience["users"]]
    assert pushes and all(n.sensitivity == "classified" for n in pushes)
    assert all("MAT_F" not in str(n.title) + str(n.body) for n in pushes)


async def test_admins_keep_fields_in_the_console(app, client, org):
    leader_page = f"/console/admin/users/{org.leader.id}"
    code = f"NN{uuid.uuid4().hex[:6]}"
    transport = httpx.ASGITransport(app=app, client=("203.0.113.20", 52000))
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as console:
        csrf = await console_sign_in(console, org.admin)
        created = await console.post(
            "/console/admin/fields",
            data={"csrf_token": csrf, "code": code, "name_vi": "Nông nghiệp", "name_en": "Agriculture"},
        )
        assert created.status_code == 303
        bad = await console.post(
            "/console/admin/fields",
            data={"csrf_token": csrf, "code": "bad code", "name_vi": "x", "name_en": "y"},
        )
        assert bad.status_code == 422
        page = await console.get(leader_page)
        assert f'value="{code}"' in page.text and "Nông nghiệp" in page.text
        saved = await console.post(f"{leader_page}/fields", data={"csrf_token": csrf, "field": [code]})
        assert saved.status_code == 303 and saved.headers["location"].endswith("?done=fields")
        listing = await console.get("/console/admin/fields")
        # The leader in charge is named (full name, which the factory builds from the username).
        assert listing.status_code == 200 and f"Nguyễn Văn {org.leader.username}</a>" in listing.text
        assert f'data-field="{code}"' in listing.text
        cleared = await console.post(f"{leader_page}/fields", data={"csrf_token": csrf})
        assert cleared.status_code == 303
        # An officer's page offers no fields; a forged form is refused like the API's.
        officer_page = await console.get(f"/console/admin/users/{org.officer.id}")
        assert "leader-fields" not in officer_page.text
        forged = await console.post(
            f"/console/admin/users/{org.officer.id}/fields", data={"csrf_token": csrf, "field": [code]}
        )
        assert forged.status_code == 422
    admin = await sign_in(client, org.admin)
    read = await client.get(f"/v1/tracking/leaders/{org.leader.id}/fields", headers=admin)
    assert read.json()["fields"] == []
    # A leader is no admin of fields in the console either.
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as console:
        csrf = await console_sign_in(console, org.central_leader)
        refused = await console.post(
            "/console/admin/fields", data={"csrf_token": csrf, "code": "ZZ", "name_vi": "x", "name_en": "y"}
        )
        assert refused.status_code == 403


async def test_update_requests_reach_the_field_leaders_of_a_task_without_responsible_people(
    client, org, fields
):
    """D-15's notifications to "the unit in charge" and the sweep's request escalation: the lead
    unit's leaders and the leaders in charge of the field (one rule, tracking/scope.py)."""
    set_clock("2026-12-07 09:00:00")  # Monday; a request asked now is due Thursday 10 December
    await upsert(
        client,
        org,
        task(org, "RQ_F", field=fields.code, responsible_users=[]),
        task(
            org,
            "RJ_F",
            field=fields.code,
            responsible_users=[],
            report={"status": "rejected", "reason": "Thiếu số liệu"},
        ),
    )
    await confirm_all()
    expected = {org.leader.id, fields.field_leader.id}
    [rejected] = [n for n in await tracking_notifications() if n.kind == "tracking.report_rejected"]
    assert {uuid.UUID(u) for u in rejected.audience["users"]} == expected
    asked = await client.post(
        f"/v1/tracking/tasks/{await task_id('RQ_F')}/requests",
        json={"kind": "update", "message": "Đề nghị báo cáo tiến độ"},
        headers=await sign_in(client, org.approver),
    )
    assert asked.status_code == 201, asked.text
    [note] = [n for n in await tracking_notifications() if n.kind == "tracking.update_requested"]
    assert {uuid.UUID(u) for u in note.audience["users"]} == expected
    # The field leader reads the task's requests as someone who sees the task.
    listed = await client.get(
        f"/v1/tracking/tasks/{await task_id('RQ_F')}/requests",
        headers=await sign_in(client, fields.field_leader),
    )
    assert listed.status_code == 200 and [r["id"] for r in listed.json()] == [asked.json()["id"]]
    set_clock("2026-12-14 08:00:30")  # the second working day after the due day: unit_leaders
    await tick()
    async with transaction() as session:
        from tracking.models import Reminder

        rows = (
            await session.execute(
                select(Reminder.user_id).where(
                    Reminder.rule == "request", Reminder.occurrence.startswith("w2:unit_leaders")
                )
            )
        ).scalars()
        assert set(rows) >= {fields.field_leader.id}

"""Inspection committees (Ủy ban Kiểm tra, issue 19 item 4): admins map a committee to the units
it oversees; its inspectors read those subtrees' tasks and nothing else, each read audited once
per request; they write nothing (the route walk is tests/api/test_route_policies.py)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy import func, select

from auth.audit.models import AuditLog
from auth.models import Unit
from auth.roles import Role
from core.db import transaction
from tests.console.support import console_sign_in
from tests.support.factories import Account, make_account, make_unit, sign_in
from tests.tracking.helpers import Org, make_org, task, upsert
from tracking.models import Task


@dataclass
class Committee:
    unit: Unit
    other: Unit  # a province the committee does not oversee
    inspector: Account


@pytest.fixture
async def org(client: httpx.AsyncClient) -> Org:
    return await make_org(client)


async def oversee(
    client: httpx.AsyncClient, headers: dict[str, str], committee: Unit, units: list[uuid.UUID]
) -> httpx.Response:
    return await client.put(
        f"/v1/inspection/committees/{committee.id}/units",
        json={"unit_ids": [str(u) for u in units]},
        headers=headers,
    )


@pytest.fixture
async def committee(client: httpx.AsyncClient, org: Org) -> Committee:
    unit = await make_unit(parent=org.central, name="Ủy ban Kiểm tra")
    found = Committee(
        unit=unit,
        other=await make_unit(parent=org.central, name="Tỉnh ủy khác"),
        inspector=await make_account(role=Role.INSPECTOR, unit=unit),
    )
    response = await oversee(client, await sign_in(client, org.admin), unit, [org.province.id])
    assert response.status_code == 200, response.text
    return found


async def task_id(code: str) -> uuid.UUID:
    async with transaction() as session:
        found: uuid.UUID = (await session.execute(select(Task.id).where(Task.code == code))).scalar_one()
        return found


async def reads_of(account: Account) -> list[AuditLog]:
    async with transaction() as session:
        rows = await session.execute(
            select(AuditLog)
            .where(AuditLog.action == "inspection.read", AuditLog.actor_id == account.id)
            .order_by(AuditLog.seq)
        )
        return list(rows.scalars())


async def listed(client: httpx.AsyncClient, headers: dict[str, str], **params: str) -> set[str]:
    response = await client.get("/v1/tracking/tasks", params={"scope": "units", **params}, headers=headers)
    assert response.status_code == 200, response.text
    return {t["code"] for t in response.json()["items"]}


async def test_admins_map_a_committee_to_the_units_it_oversees_audited(client, org):
    admin = await sign_in(client, org.admin)
    unit = await make_unit(parent=org.central, name="Ủy ban Kiểm tra Tỉnh")
    assert (await oversee(client, admin, unit, [org.province.id, org.province.id])).status_code == 200
    listed_units = await client.get(f"/v1/inspection/committees/{unit.id}/units", headers=admin)
    assert [u["id"] for u in listed_units.json()] == [str(org.province.id)]
    unknown = await oversee(client, admin, unit, [uuid.uuid4()])
    assert unknown.status_code == 422 and unknown.json()["error"]["code"] == "unknown_units"
    assert (await oversee(client, admin, unit, [uuid.uuid4() for _ in range(501)])).status_code == 422
    assert (
        await client.put(f"/v1/inspection/committees/{unit.id}/units", json={}, headers=admin)
    ).status_code == 422
    # A province's admin reaches neither a committee outside its subtree nor units outside it.
    province_admin = await sign_in(client, await make_account(role=Role.UNIT_ADMIN, unit=org.province))
    assert (await oversee(client, province_admin, unit, [org.province.id])).status_code == 404
    own = await make_unit(parent=org.province, name="Ủy ban Kiểm tra Huyện")
    assert (await oversee(client, province_admin, own, [org.central.id])).status_code == 422
    assert (await oversee(client, province_admin, own, [org.province.id])).status_code == 200
    # Leaders and officers do not manage it.
    leader = await sign_in(client, org.leader)
    assert (await oversee(client, leader, own, [])).status_code == 403
    assert (await oversee(client, admin, unit, [])).json() == []
    async with transaction() as session:
        rows = (
            await session.execute(
                select(AuditLog)
                .where(AuditLog.action == "inspection.oversight.changed", AuditLog.object_id == str(unit.id))
                .order_by(AuditLog.seq)
            )
        ).scalars()
        assert [(r.details["added"], r.details["removed"]) for r in rows] == [
            ([str(org.province.id)], []),
            ([], [str(org.province.id)]),
        ]


async def test_an_inspector_reads_the_overseen_subtrees_only(client, org, committee):
    district = await make_unit(parent=org.province, name="Huyện ủy")
    await upsert(
        client,
        org,
        task(org, "IN_A", deadline="2026-12-01"),
        task(org, "IN_DISTRICT", lead_unit=district.code, responsible_users=[]),
        task(org, "IN_B", lead_unit=committee.other.code, responsible_users=[]),
        task(
            org,
            "CO_A",
            lead_unit=committee.other.code,
            cooperating_units=[org.province.code],
            responsible_users=[],
        ),
    )
    inspector = await sign_in(client, committee.inspector)
    assert await listed(client, inspector) == {"IN_A", "IN_DISTRICT", "CO_A"}
    assert await listed(client, inspector, scope="mine") == set()
    assert (
        await client.get(f"/v1/tracking/tasks/{await task_id('IN_A')}", headers=inspector)
    ).status_code == 200
    assert (
        await client.get(f"/v1/tracking/tasks/{await task_id('IN_B')}", headers=inspector)
    ).status_code == 404
    counts = (await client.get("/v1/tracking/tasks/counts", headers=inspector)).json()
    assert {c["unit_id"] for c in counts} == {str(org.province.id), str(district.id), str(committee.other.id)}
    # Nothing of the committee's own unit or of other domains.
    for path in ("/v1/users", "/v1/audit", "/v1/reports/pushes", "/v1/units", "/v1/inbox"):
        response = await client.get(path, headers=inspector)
        assert response.status_code == 403, path
    # The mapping is read per request: a change applies to the next one.
    await oversee(client, await sign_in(client, org.admin), committee.unit, [committee.other.id])
    assert await listed(client, inspector) == {"IN_B", "CO_A"}
    # A committee that oversees nothing reads nothing.
    idle = await make_account(role=Role.INSPECTOR, unit=await make_unit(parent=org.central, name="UBKT"))
    assert await listed(client, await sign_in(client, idle)) == set()


async def test_each_read_of_an_inspector_is_one_audit_row(client, org, committee):
    await upsert(client, org, *[task(org, f"AU_{i}") for i in range(30)])
    inspector = await sign_in(client, committee.inspector)
    before = len(await reads_of(committee.inspector))
    assert len(await listed(client, inspector, unit_id=str(org.province.id))) == 30
    rows = (await reads_of(committee.inspector))[before:]
    assert len(rows) == 1
    [row] = rows
    assert row.object_id == "GET /v1/tracking/tasks"
    assert row.unit_id == org.province.id
    assert row.details["query"] == {"scope": "units", "unit_id": str(org.province.id)}
    assert row.details["overseen"] == [str(org.province.id)]
    one = await task_id("AU_1")
    await client.get(f"/v1/tracking/tasks/{one}", headers=inspector)
    [row] = (await reads_of(committee.inspector))[before + 1 :]
    assert row.object_id == "GET /v1/tracking/tasks/{task_id}" and row.details["path"].endswith(str(one))
    assert row.unit_id == committee.unit.id  # no unit asked for: the committee's
    # A read that fails (here a task outside the committee's units: 404) is on the record too,
    # as a failure, although the request's own transaction rolled back.
    await upsert(client, org, task(org, "AU_OUT", lead_unit=committee.other.code, responsible_users=[]))
    outside = await task_id("AU_OUT")
    assert (await client.get(f"/v1/tracking/tasks/{outside}", headers=inspector)).status_code == 404
    [row] = (await reads_of(committee.inspector))[before + 2 :]
    assert (row.object_id, row.outcome) == ("GET /v1/tracking/tasks/{task_id}", "failure")
    assert row.details["path"].endswith(str(outside))
    # Other accounts' reads are not audited this way.
    await listed(client, await sign_in(client, org.leader))
    async with transaction() as session:
        others = await session.execute(
            select(func.count()).where(
                AuditLog.action == "inspection.read", AuditLog.actor_id == org.leader.id
            )
        )
        assert others.scalar_one() == 0


async def test_an_inspector_cannot_write_even_what_a_reader_may(client, org, committee):
    await upsert(client, org, task(org, "RO_1"))
    inspector = await sign_in(client, committee.inspector)
    one = await task_id("RO_1")
    for method, path, body in (
        ("POST", f"/v1/tracking/tasks/{one}/confirm", None),
        ("POST", f"/v1/tracking/tasks/{one}/refuse", {"code": "wrong_assignment", "reason": "x"}),
        ("PUT", "/v1/tracking/preferences", {"daily_digest": True}),
        ("POST", "/v1/devices", {"app": "tracking", "platform": "android", "token": "t", "locale": "vi"}),
    ):
        response = await client.request(method, path, json=body, headers=inspector)
        assert response.status_code == 403, (path, response.text)
        assert response.json()["error"]["code"] == "read_only_role"
    async with transaction() as session:
        denied = await session.execute(
            select(func.count()).where(
                AuditLog.action == "permission.denied",
                AuditLog.actor_id == committee.inspector.id,
                AuditLog.outcome == "denied",
            )
        )
        assert denied.scalar_one() == 4
    # Signing out stays its own.
    assert (await client.post("/v1/auth/logout", headers=inspector)).status_code == 204


async def test_an_inspector_sees_a_classified_task_as_a_leader_does(client, org, committee):
    await upsert(client, org, task(org, "MAT_I", name="Phương án mật", classified=True))
    inspector = await sign_in(client, committee.inspector)
    leader = await sign_in(client, org.leader)
    seen = (await client.get(f"/v1/tracking/tasks/{await task_id('MAT_I')}", headers=inspector)).json()
    as_leader = (await client.get(f"/v1/tracking/tasks/{await task_id('MAT_I')}", headers=leader)).json()
    assert seen == as_leader
    assert seen["classified"] and seen["description"] is None and seen["proposals"] is None


async def test_an_inspector_uses_the_console_tracking_pages_read_only(app, client, org, committee):
    await upsert(client, org, task(org, "CON_A", deadline="2026-12-01"))
    await upsert(client, org, task(org, "CON_B", lead_unit=committee.other.code, responsible_users=[]))
    transport = httpx.ASGITransport(app=app, client=("203.0.113.20", 52000))
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as console:
        csrf = await console_sign_in(console, committee.inspector)
        dashboard = await console.get("/console/tracking")
        assert dashboard.status_code == 200 and "CON_A" in dashboard.text and "CON_B" not in dashboard.text
        page = await console.get("/console/tracking/tasks")
        assert "CON_A" in page.text and "CON_B" not in page.text
        # The unit filter offers the overseen units, not the committee's own.
        assert f'value="{org.province.id}"' in page.text
        assert f'value="{committee.unit.id}"' not in page.text
        refused = await console.post(
            "/console/lang", data={"csrf_token": csrf, "language": "en", "next": "/"}
        )
        assert refused.status_code in (303, 200)  # the language cookie is not an account write
    assert len(await reads_of(committee.inspector)) >= 3


async def test_kpis_are_read_by_the_same_scope_as_tasks(client, org, committee):
    def kpi(code: str, unit: str, due: str, **more: object) -> dict[str, object]:
        return {
            "code": code,
            "period": "2026-Q4",
            "period_kind": "quarter",
            "version": 1,
            "name": "Tỷ lệ hồ sơ trực tuyến",
            "unit": unit,
            "report_due": due,
            **more,
        }

    sent = await client.put(
        "/v1/tracking/kpis",
        json={
            "kpis": [
                kpi("K.01", org.province.code, "2027-01-05"),
                kpi("K.02", org.province.code, "2027-01-10", target="90.5"),
                kpi("K.03", committee.other.code, "2027-01-07"),
                kpi("K.04", committee.other.code, "2027-01-08", responsible_users=[org.officer.username]),
            ]
        },
        headers=org.system,
    )
    assert sent.status_code == 200, sent.text

    async def codes(headers: dict[str, str], **params: str) -> list[str]:
        response = await client.get("/v1/tracking/kpis", params=params, headers=headers)
        assert response.status_code == 200, response.text
        return [k["code"] for k in response.json()["items"]]

    inspector = await sign_in(client, committee.inspector)
    assert await codes(inspector) == ["K.02", "K.01"]  # newest report_due first
    first = (await client.get("/v1/tracking/kpis", params={"limit": 1}, headers=inspector)).json()
    assert [k["code"] for k in first["items"]] == ["K.02"] and first["next_cursor"]
    assert await codes(inspector, limit="1", cursor=first["next_cursor"]) == ["K.01"]
    bad = await client.get("/v1/tracking/kpis", params={"cursor": "not-ours"}, headers=inspector)
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_cursor"
    assert await codes(inspector, unit_id=str(committee.other.id)) == []
    # The province's leader reads its unit's; the officer also the one they report elsewhere.
    assert await codes(await sign_in(client, org.leader)) == ["K.02", "K.01"]
    assert await codes(await sign_in(client, org.officer)) == ["K.02", "K.04", "K.01"]
    assert set(await codes(await sign_in(client, org.admin))) >= {"K.01", "K.02", "K.03", "K.04"}
    [row] = [r for r in await reads_of(committee.inspector) if r.object_id == "GET /v1/tracking/kpis"][-1:]
    assert row.details["query"] == {"unit_id": str(committee.other.id)} and row.unit_id == committee.other.id

"""Apps as data (issue 19 item 6): the seeded portal and tracking apps behave as before, a third
app is created through the API and takes registrations and pushes, an unknown or disabled app is
refused in the one error shape, and the app rows are read from memory on the hot paths."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import event, text

from auth.roles import Role
from core import clock
from core.config import get_settings
from core.db import get_engine, transaction
from devices import apps
from tests.support.factories import make_account, make_unit, sign_in

HANDBOOK = {
    "code": "handbook",
    "name": "Sổ tay đảng viên",
    "platforms": ["ios", "android"],
    "fcm_project_id": "handbook-project",
    "apns_topic": "vn.dang.handbook",
    "languages": ["vi", "en"],
}


@pytest.fixture
async def system_admin(client):
    account = await make_account(role=Role.SYSTEM_ADMIN, unit=await make_unit())
    return account, await sign_in(client, account)


@pytest.fixture
async def member(client):
    account = await make_account(role=Role.MEMBER, unit=await make_unit(), enrolled=False)
    return account, await sign_in(client, account)


def registration(app: str, **fields) -> dict:
    return {"app": app, "platform": "android", "token": f"fcm-{uuid.uuid4().hex}", **fields}


def error_code(response) -> str:
    body = response.json()
    assert set(body["error"]) == {"code", "message", "details", "request_id"}, body
    return str(body["error"]["code"])


async def test_the_seeded_apps_keep_todays_behaviour(client, system_admin, member):
    _, admin_headers = system_admin
    listed = (await client.get("/v1/apps", headers=admin_headers)).json()
    by_code = {app["code"]: app for app in listed}
    assert set(by_code) == {"portal", "tracking"}
    for app in by_code.values():
        assert app["enabled"] and app["platforms"] == ["android", "ios"]
        assert app["languages"] == ["vi", "en", "zh", "fr", "es", "ru"]
        assert app["fcm_project_id"] is None and app["apns_topic"] is None
    assert by_code["portal"]["anonymous_devices"] and not by_code["tracking"]["anonymous_devices"]

    anonymous_portal = await client.post("/v1/devices", json=registration("portal"))
    assert anonymous_portal.status_code == 201 and anonymous_portal.json()["device_credential"]
    anonymous_tracking = await client.post("/v1/devices", json=registration("tracking"))
    assert anonymous_tracking.status_code == 401 and error_code(anonymous_tracking) == "sign_in_required"
    _, member_headers = member
    signed_in = await client.post("/v1/devices", json=registration("tracking"), headers=member_headers)
    assert signed_in.status_code == 201 and signed_in.json()["app"] == "tracking"


async def test_a_third_app_is_created_audited_and_takes_registrations(
    client, system_admin, member, owner_engine
):
    _, admin_headers = system_admin
    created = await client.post("/v1/apps", json=HANDBOOK, headers=admin_headers)
    assert created.status_code == 201, created.text
    assert created.json() | {"created_at": None, "updated_at": None} == {
        **HANDBOOK,
        "platforms": ["android", "ios"],
        "enabled": True,
        "anonymous_devices": False,
        "created_at": None,
        "updated_at": None,
    }
    again = await client.post("/v1/apps", json=HANDBOOK, headers=admin_headers)
    assert again.status_code == 409 and error_code(again) == "app_exists"

    _, member_headers = member
    device = await client.post("/v1/devices", json=registration("handbook"), headers=member_headers)
    assert device.status_code == 201 and device.json()["app"] == "handbook"
    anonymous = await client.post("/v1/devices", json=registration("handbook"))
    assert anonymous.status_code == 401 and error_code(anonymous) == "sign_in_required"

    async with owner_engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT action, object_id, details FROM audit_log WHERE action LIKE 'app.%' ORDER BY seq"
                )
            )
        ).all()
    assert [(row.action, row.object_id) for row in rows] == [("app.created", "handbook")]
    assert rows[0].details["fcm_project_id"] == "handbook-project"


async def test_unknown_odd_and_over_long_apps_are_refused_before_anything_is_stored(
    client, member, owner_engine
):
    _, headers = member
    unknown = await client.post("/v1/devices", json=registration("handbook"), headers=headers)
    assert unknown.status_code == 422 and error_code(unknown) == "unknown_app"
    assert unknown.json()["error"]["details"] == [{"app": "handbook"}]
    for odd in ("x" * 17, "x" * 5000, "Portal", "portal ", "1app", "p", "", "pörtal", "portal\u0000"):
        response = await client.post("/v1/devices", json=registration(odd), headers=headers)
        assert response.status_code == 422 and error_code(response) == "validation_error", odd
    for path in ("/v1/inbox?app=" + "x" * 17, "/v1/inbox/unread-count?app=Portal"):
        assert (await client.get(path, headers=headers)).status_code == 422, path
    async with owner_engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM devices"))).scalar_one() == 0


async def test_a_disabled_app_takes_no_registrations_or_pushes_but_its_inbox_still_reads(
    client, system_admin, member, owner_engine
):
    _, admin_headers = system_admin
    assert (await client.post("/v1/apps", json=HANDBOOK, headers=admin_headers)).status_code == 201
    account, member_headers = member
    assert (
        await client.post("/v1/devices", json=registration("handbook"), headers=member_headers)
    ).status_code == 201

    disabled = await client.patch("/v1/apps/handbook", json={"enabled": False}, headers=admin_headers)
    assert disabled.status_code == 200 and disabled.json()["enabled"] is False
    refused = await client.post("/v1/devices", json=registration("handbook"), headers=member_headers)
    assert refused.status_code == 422 and error_code(refused) == "app_disabled"
    push = {
        "app": "handbook",
        "kind": "handbook.update",
        "title": {"vi": "Cập nhật"},
        "body": {"vi": "Nội dung"},
        "audience": {"users": [str(account.id)]},
    }
    sent = await client.post("/v1/notifications", json=push, headers=admin_headers)
    assert sent.status_code == 422 and error_code(sent) == "app_disabled"
    inbox = await client.get("/v1/inbox?app=handbook", headers=member_headers)
    assert inbox.status_code == 200
    unknown = await client.get("/v1/inbox?app=nothing", headers=member_headers)
    assert unknown.status_code == 422 and error_code(unknown) == "unknown_app"

    enabled = await client.patch("/v1/apps/handbook", json={"enabled": True}, headers=admin_headers)
    assert enabled.json()["enabled"] is True
    assert (await client.post("/v1/notifications", json=push, headers=admin_headers)).status_code == 202
    async with owner_engine.connect() as conn:
        actions = (
            await conn.execute(text("SELECT action FROM audit_log WHERE action LIKE 'app.%' ORDER BY seq"))
        ).scalars()
        assert list(actions) == ["app.created", "app.disabled", "app.enabled"]


async def test_platforms_and_languages_of_the_app_are_enforced(client, system_admin, member):
    _, admin_headers = system_admin
    ios_only = {**HANDBOOK, "platforms": ["ios"]}
    assert (await client.post("/v1/apps", json=ios_only, headers=admin_headers)).status_code == 201
    account, member_headers = member
    android = await client.post("/v1/devices", json=registration("handbook"), headers=member_headers)
    assert android.status_code == 422 and error_code(android) == "platform_not_supported"
    push = {
        "app": "handbook",
        "kind": "handbook.update",
        "title": {"vi": "Cập nhật", "ru": "Обновление"},
        "body": {"vi": "Nội dung"},
        "audience": {"users": [str(account.id)]},
    }
    refused = await client.post("/v1/notifications", json=push, headers=admin_headers)
    assert refused.status_code == 422 and error_code(refused) == "language_not_offered"
    assert refused.json()["error"]["details"] == [{"app": "handbook", "language": "ru"}]
    # An app without Vietnamese would leave readers without the fallback (D-02).
    no_vi = await client.patch("/v1/apps/handbook", json={"languages": ["en"]}, headers=admin_headers)
    assert no_vi.status_code == 422
    cleared = await client.patch(
        "/v1/apps/handbook", json={"fcm_project_id": None, "apns_topic": None}, headers=admin_headers
    )
    assert (cleared.json()["fcm_project_id"], cleared.json()["apns_topic"]) == (None, None)
    assert (
        await client.patch("/v1/apps/handbook", json={"enabled": None}, headers=admin_headers)
    ).status_code == 422
    missing = await client.patch("/v1/apps/nothing", json={"enabled": False}, headers=admin_headers)
    assert missing.status_code == 404 and error_code(missing) == "app_not_found"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("code", "x" * 17),
        ("code", "Handbook"),
        ("name", ""),
        ("name", "n" * 129),
        ("platforms", ["web"]),
        ("platforms", []),
        ("languages", ["vi", "de"]),
        ("fcm_project_id", "Bad_Project"),
        ("fcm_project_id", "p" * 31),
        ("apns_topic", "no-dots"),
        ("apns_topic", "vn." + "a" * 200),
        ("enabled", True),  # not a field of a new app: it starts enabled
    ],
)
async def test_odd_app_definitions_are_refused(client, system_admin, field, value):
    _, headers = system_admin
    response = await client.post("/v1/apps", json={**HANDBOOK, field: value}, headers=headers)
    assert response.status_code == 422 and error_code(response) == "validation_error"


async def test_only_system_admins_manage_apps_and_changes_need_a_fresh_step_up(client, system_admin):
    unit_admin = await make_account(role=Role.UNIT_ADMIN, unit=await make_unit())
    unit_headers = await sign_in(client, unit_admin)
    for method, path in (("GET", "/v1/apps"), ("POST", "/v1/apps"), ("PATCH", "/v1/apps/portal")):
        body = HANDBOOK if method == "POST" else {"enabled": False} if method == "PATCH" else None
        response = await client.request(method, path, json=body, headers=unit_headers)
        assert response.status_code == 403, path
    assert (await client.get("/v1/apps")).status_code == 401

    account, headers = system_admin
    clock.advance(301)
    stale = await client.patch("/v1/apps/portal", json={"enabled": False}, headers=headers)
    assert stale.status_code == 403 and error_code(stale) == "step_up_required"
    assert (await client.get("/v1/apps", headers=headers)).status_code == 200
    verified = await client.post("/v1/auth/mfa/verify", json={"code": account.code()}, headers=headers)
    assert verified.status_code == 204
    renamed = await client.patch("/v1/apps/portal", json={"name": "Cổng"}, headers=headers)
    assert renamed.status_code == 200 and renamed.json()["name"] == "Cổng"


async def test_the_hot_paths_read_the_apps_from_memory(client, member, owner_engine):
    """A registration or an inbox read adds no query for the app once the copy is loaded; a
    change another process makes is seen once the copy is ``CACHE_SECONDS`` old."""
    _, headers = member
    statements: list[str] = []

    def seen(conn, cursor, statement, parameters, context, executemany) -> None:
        statements.append(statement)

    assert (await client.post("/v1/devices", json=registration("portal"), headers=headers)).status_code == 201
    event.listen(get_engine().sync_engine, "before_cursor_execute", seen)
    try:
        for _ in range(3):
            response = await client.post("/v1/devices", json=registration("portal"), headers=headers)
            assert response.status_code == 201
            assert (await client.get("/v1/inbox?app=portal", headers=headers)).status_code == 200
    finally:
        event.remove(get_engine().sync_engine, "before_cursor_execute", seen)
    assert statements and not [s for s in statements if "FROM apps" in s]

    # Another process disables the portal app: this one sees it within CACHE_SECONDS.
    async with owner_engine.begin() as conn:
        await conn.execute(text("UPDATE apps SET enabled = false WHERE code = 'portal'"))
    assert (await client.post("/v1/devices", json=registration("portal"), headers=headers)).status_code == 201
    clock.advance(apps.CACHE_SECONDS)
    late = await client.post("/v1/devices", json=registration("portal"), headers=headers)
    assert late.status_code == 422 and error_code(late) == "app_disabled"


async def test_the_copy_belongs_to_its_database(owner_engine):
    """A process pointed at another database (as each test is) never answers from the previous
    one's copy, however fresh."""
    ghost = apps.AppInfo(
        code="ghost",
        name="Ghost",
        enabled=True,
        platforms=frozenset({"android"}),
        fcm_project_id=None,
        apns_topic=None,
        languages=frozenset({"vi"}),
        anonymous_devices=True,
    )
    apps._cached = apps._Cached(
        database=object(),  # another engine
        loaded_at=clock.utcnow().timestamp(),
        apps={"ghost": ghost},
    )
    async with transaction() as session:
        assert await apps.find(session, "ghost") is None
        assert await apps.find(session, "portal") is not None
    async with owner_engine.begin() as conn:
        await conn.execute(text("INSERT INTO apps (code, name) VALUES ('other', 'Other')"))
    async with transaction() as session:
        assert await apps.find(session, "other") is None  # this database's copy, for CACHE_SECONDS
        apps.invalidate()
        assert await apps.find(session, "other") is not None


async def test_a_new_app_gets_the_four_eyes_bound_of_direct_pushes(client, system_admin, monkeypatch):
    """Only the tracking app's named-staff pushes are exempt; an app added later is bounded as
    the portal is (notifications/policy.py)."""
    monkeypatch.setattr(get_settings(), "direct_push_max_recipients", 1)
    _, headers = system_admin
    assert (await client.post("/v1/apps", json=HANDBOOK, headers=headers)).status_code == 201
    unit = await make_unit()
    readers = [await make_account(role=Role.MEMBER, unit=unit, enrolled=False) for _ in range(2)]
    for app, status in (("handbook", 403), ("portal", 403), ("tracking", 202)):
        push = {
            "app": app,
            "kind": "notice",
            "title": {"vi": "Tin"},
            "body": {"vi": "Nội dung"},
            "audience": {"users": [str(reader.id) for reader in readers]},
        }
        response = await client.post("/v1/notifications", json=push, headers=headers)
        assert response.status_code == status, (app, response.text)
        if status == 403:
            assert error_code(response) == "four_eyes_required"

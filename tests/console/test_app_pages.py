"""The Apps page (issue 19 item 9) over HTTP: system admins only, the API's validation, audited."""

from __future__ import annotations

from sqlalchemy import text

from auth.roles import Role
from tests.console.support import console_sign_in
from tests.support.factories import make_account, make_unit

NEW_APP = {
    "code": "handbook",
    "name": "Sổ tay đảng viên",
    "platforms": ["android", "ios"],
    "languages": ["vi", "en"],
    "fcm_project_id": "handbook-project",
    "apns_topic": "vn.dang.handbook",
}


async def test_only_system_admins_reach_the_apps_page(console):
    unit_admin = await make_account(role=Role.UNIT_ADMIN, unit=await make_unit())
    await console_sign_in(console, unit_admin)
    home = await console.get("/console/home")
    assert "/console/admin/apps" not in home.text
    for path in ("/console/admin/apps", "/console/admin/apps/portal"):
        assert (await console.get(path)).status_code == 403, path


async def test_a_system_admin_creates_edits_and_disables_an_app(console, owner_engine):
    admin = await make_account(role=Role.SYSTEM_ADMIN, unit=await make_unit())
    csrf = await console_sign_in(console, admin)
    listing = await console.get("/console/admin/apps")
    assert listing.status_code == 200
    assert 'data-app="portal"' in listing.text and 'data-app="tracking"' in listing.text
    assert "/console/admin/apps" in (await console.get("/console/home")).text

    created = await console.post("/console/admin/apps", data={**NEW_APP, "csrf_token": csrf})
    assert created.status_code == 303 and created.headers["location"].endswith(
        "/admin/apps/handbook?done=created"
    )
    page = await console.get("/console/admin/apps/handbook")
    assert page.status_code == 200 and "handbook-project" in page.text and "vn.dang.handbook" in page.text

    # The form is the whole new state: enabled left unchecked disables the app, empty project
    # and topic go back to the configured ones.
    edit = {"name": "Sổ tay", "platforms": ["ios"], "languages": ["vi"], "csrf_token": csrf}
    saved = await console.post("/console/admin/apps/handbook", data=edit)
    assert saved.status_code == 303
    async with owner_engine.connect() as conn:
        row = (await conn.execute(text("SELECT * FROM apps WHERE code = 'handbook'"))).mappings().one()
        actions = list(
            (
                await conn.execute(
                    text("SELECT action FROM audit_log WHERE action LIKE 'app.%' ORDER BY seq")
                )
            ).scalars()
        )
    assert (row["name"], row["enabled"], row["platforms"], row["languages"]) == (
        "Sổ tay",
        False,
        ["ios"],
        ["vi"],
    )
    assert (row["fcm_project_id"], row["apns_topic"]) == (None, None)
    assert actions == ["app.created", "app.updated"]


async def test_odd_app_forms_are_refused_like_the_api_refuses_them(console, owner_engine):
    admin = await make_account(role=Role.SYSTEM_ADMIN, unit=await make_unit())
    csrf = await console_sign_in(console, admin)
    for field, value in (
        ("code", "Handbook"),
        ("code", "x" * 17),
        ("languages", ["en"]),
        ("platforms", ["web"]),
        ("fcm_project_id", "Bad_Project"),
        ("apns_topic", "nodots"),
    ):
        response = await console.post(
            "/console/admin/apps", data={**NEW_APP, field: value, "csrf_token": csrf}
        )
        assert response.status_code == 422, (field, value)
    too_long = await console.post(
        "/console/admin/apps", data={**NEW_APP, "code": "x" * 65, "csrf_token": csrf}
    )
    assert too_long.status_code == 422
    assert (await console.get("/console/admin/apps/nothing")).status_code == 404
    assert (await console.post("/console/admin/apps", data=NEW_APP)).status_code == 403  # no CSRF token
    async with owner_engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM apps"))).scalar_one() == 2

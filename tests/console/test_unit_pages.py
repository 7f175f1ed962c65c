"""The units page over HTTP: the tree of one's subtree, create and rename through the API's own
use cases (audited), refusals said in words next to the form, permissions, CSRF, escaping."""

from __future__ import annotations

import re
import uuid

import httpx
from sqlalchemy import func, select

from auth.models import Unit
from auth.roles import Role
from core.db import transaction
from tests.console.support import console_sign_in
from tests.sms.helpers import audit_rows
from tests.support.factories import make_account, make_unit


async def _unit_count() -> int:
    async with transaction() as session:
        return int((await session.execute(select(func.count()).select_from(Unit))).scalar_one())


def _form_error(html: str) -> str:
    found = re.search(r'data-testid="form-error">(.*?)</p>', html, re.S)
    assert found, "no form error on the page"
    return found.group(1)


async def test_an_admin_creates_and_renames_a_unit_in_the_tree_and_both_are_audited(console):
    root = await make_unit(name="Văn phòng Trung ương")
    province = await make_unit(parent=root, name="Tỉnh ủy Nam Định")
    admin = await make_account(role=Role.SYSTEM_ADMIN, unit=root)
    token = await console_sign_in(console, admin)

    page = await console.get("/console/admin/units")
    assert page.status_code == 200
    assert 'href="/console/admin/units"' in page.text  # the nav link
    tree = page.text.split('data-testid="unit-tree"')[1]
    assert tree.index("Văn phòng Trung ương") < tree.index("Tỉnh ủy Nam Định")  # parent first, nested
    assert re.search(
        rf'<li data-unit="{root.code}">.*<ul class="tree">\s*<li data-unit="{province.code}">', tree, re.S
    )

    created = await console.post(
        "/console/admin/units",
        data={
            "csrf_token": token,
            "parent_id": str(province.id),
            "code": "NĐ-XA-01".replace("Đ", "D"),
            "name": "  Xã Giao Thủy  ",
            "kind": "commune",
        },
    )
    assert created.status_code == 303, created.text
    unit_page = await console.get(created.headers["location"])
    assert "Đã tạo đơn vị." in unit_page.text and "Xã Giao Thủy" in unit_page.text
    assert "Xã, phường" in unit_page.text and "Tỉnh ủy Nam Định" in unit_page.text  # kind, parent
    async with transaction() as session:
        unit = (await session.execute(select(Unit).where(Unit.code == "ND-XA-01"))).scalar_one()
    assert unit.parent_id == province.id and unit.depth == 2 and unit.name == "Xã Giao Thủy"

    renamed = await console.post(
        f"/console/admin/units/{unit.id}/rename", data={"csrf_token": token, "name": "Xã Giao Thủy mới"}
    )
    assert renamed.status_code == 303
    assert "Đã đổi tên đơn vị." in (await console.get(renamed.headers["location"])).text
    rows = [r for r in await audit_rows("unit.") if r.object_id == str(unit.id)]
    assert [(r.action, r.actor_id, r.outcome) for r in rows] == [
        ("unit.created", admin.id, "success"),
        ("unit.renamed", admin.id, "success"),
    ]
    assert rows[1].details == {"from": "Xã Giao Thủy", "to": "Xã Giao Thủy mới"}


async def test_bad_input_is_refused_in_words_next_to_the_form_and_nothing_is_written(console):
    root = await make_unit(code="TW")
    admin = await make_account(role=Role.SYSTEM_ADMIN, unit=root)
    token = await console_sign_in(console, admin)
    before = await _unit_count()
    good = {
        "csrf_token": token,
        "parent_id": str(root.id),
        "code": "OK-1",
        "name": "Đơn vị",
        "kind": "agency",
    }
    cases = {
        "long name": ({"name": "Ư" * 256}, 422, "Tên quá dài: tối đa 255 ký tự."),
        "empty name": ({"name": "   "}, 422, "Cần nhập Tên."),
        "code with a space": ({"code": "BAD CODE"}, 422, "Mã chỉ được gồm chữ cái Latinh không dấu"),
        "long code": ({"code": "A" * 65}, 422, "Mã quá dài: tối đa 64 ký tự."),
        "unknown kind": ({"kind": "galaxy"}, 422, "Loại không hợp lệ."),
        "not a unit id": ({"parent_id": "not-a-uuid"}, 422, "Đơn vị cấp trên không hợp lệ."),
        "duplicate code": ({"code": "TW"}, 409, "Đã có đơn vị mang mã này"),
    }
    for name, (change, status, said) in cases.items():
        response = await console.post("/console/admin/units", data={**good, **change})
        assert response.status_code == status, (name, response.text[:300])
        assert said in _form_error(response.text), name
        if name == "long name":  # what was typed comes back, escaped, so one field is corrected
            assert 'value="OK-1"' in response.text
    assert await _unit_count() == before
    assert await audit_rows("unit.") == []

    unknown = await console.post("/console/admin/units", data={**good, "parent_id": str(uuid.uuid4())})
    assert unknown.status_code == 404 and "Không tìm thấy đơn vị" in unknown.text
    too_long = await console.post(
        f"/console/admin/units/{root.id}/rename", data={"csrf_token": token, "name": "x" * 300}
    )
    assert too_long.status_code == 422 and "Tên quá dài" in _form_error(too_long.text)
    async with transaction() as session:
        assert (await session.get(Unit, root.id)).name == "Đơn vị"  # type: ignore[union-attr]


async def test_a_unit_admin_works_inside_its_subtree_and_readers_only_read(console, app):
    root = await make_unit(name="Gốc")
    mine = await make_unit(parent=root, name="Tỉnh của tôi")
    other = await make_unit(parent=root, name="Tỉnh khác")
    admin = await make_account(role=Role.UNIT_ADMIN, unit=mine)
    token = await console_sign_in(console, admin)
    page = await console.get("/console/admin/units")
    assert "Tỉnh của tôi" in page.text and "Tỉnh khác" not in page.text and "Gốc" not in page.text
    assert (await console.get(f"/console/admin/units/{other.id}")).status_code == 404
    outside = await console.post(
        "/console/admin/units",
        data={"csrf_token": token, "parent_id": str(other.id), "code": "X1", "name": "X", "kind": "district"},
    )
    assert outside.status_code == 404
    rename = await console.post(
        f"/console/admin/units/{other.id}/rename", data={"csrf_token": token, "name": "Đổi tên lén"}
    )
    assert rename.status_code == 404
    mine_page = await console.get(f"/console/admin/units/{mine.id}")
    assert "Gốc" not in mine_page.text  # the parent above one's subtree is not named

    # An editor holds units:read: the tree, without forms or the menu link; changes are refused.
    transport = httpx.ASGITransport(app=app, client=("203.0.113.31", 52031))
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as http:
        editor = await make_account(role=Role.EDITOR, unit=mine)
        editor_token = await console_sign_in(http, editor)
        read = await http.get("/console/admin/units")
        assert read.status_code == 200 and "Tỉnh của tôi" in read.text
        assert 'data-testid="unit-form"' not in read.text and 'href="/console/admin/units"' not in read.text
        refused = await http.post(
            "/console/admin/units",
            data={
                "csrf_token": editor_token,
                "parent_id": str(mine.id),
                "code": "E1",
                "name": "E",
                "kind": "agency",
            },
        )
        assert refused.status_code == 403 and "permission_denied" in refused.text
    denied = [r for r in await audit_rows("permission.denied") if r.actor_id == editor.id]
    assert [r.object_id for r in denied] == ["POST /console/admin/units"]

    transport = httpx.ASGITransport(app=app, client=("203.0.113.32", 52032))
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as http:
        await console_sign_in(http, await make_account(role=Role.MEMBER, unit=mine, enrolled=False))
        assert (await http.get("/console/admin/units")).status_code == 403


async def test_a_form_without_the_csrf_token_changes_nothing(console):
    root = await make_unit()
    admin = await make_account(role=Role.SYSTEM_ADMIN, unit=root)
    await console_sign_in(console, admin)
    before = await _unit_count()
    form = {"parent_id": str(root.id), "code": "CSRF1", "name": "Giả mạo", "kind": "agency"}
    for data in (form, {**form, "csrf_token": "x" * 43}):
        response = await console.post("/console/admin/units", data=data)
        assert response.status_code == 403 and "csrf" in response.text
    renamed = await console.post(f"/console/admin/units/{root.id}/rename", data={"name": "Giả mạo"})
    assert renamed.status_code == 403
    assert await _unit_count() == before


async def test_odd_input_is_refused_without_a_server_error(console):
    root = await make_unit()
    admin = await make_account(role=Role.SYSTEM_ADMIN, unit=root)
    token = await console_sign_in(console, admin)
    for after in ("../../etc", "x" * 3000, "ABC/"):
        assert (await console.get("/console/admin/units", params={"after": after})).status_code == 400, after
    nul = await console.post(
        "/console/admin/units",
        data={
            "csrf_token": token,
            "parent_id": str(root.id),
            "code": "N1",
            "name": "a\x00b",
            "kind": "agency",
        },
    )
    assert nul.status_code == 422
    huge = await console.post(
        "/console/admin/units",
        data={
            "csrf_token": token,
            "parent_id": str(root.id),
            "code": "N1",
            "name": "x" * 5000,
            "kind": "agency",
        },
    )
    assert huge.status_code == 422  # beyond the request bound: refused before the model
    assert (await console.get("/console/admin/units/not-a-uuid")).status_code == 422


async def test_a_script_in_a_unit_name_renders_inert(console):
    name = '<script>alert("x")</script>'
    root = await make_unit(name=name)
    await console_sign_in(console, await make_account(role=Role.SYSTEM_ADMIN, unit=root))
    for path in ("/console/admin/units", f"/console/admin/units/{root.id}"):
        page = await console.get(path)
        assert name not in page.text and "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page.text

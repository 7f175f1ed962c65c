"""The sections page over HTTP: a portal's editors create, rename and archive their sections with
``news.sections`` (audited); national sections are the system admins'; refusals in words;
archiving asks for a ticked box; permissions and CSRF as everywhere."""

from __future__ import annotations

import re

import httpx
from sqlalchemy import select

from auth.roles import Role
from core.db import transaction
from news.models import Section
from tests.console.support import console_sign_in
from tests.sms.helpers import audit_rows
from tests.support.factories import make_account, make_unit


def _form_error(html: str) -> str:
    found = re.search(r'data-testid="form-error">(.*?)</p>', html, re.S)
    assert found, "no form error on the page"
    return found.group(1)


async def _section(code: str) -> Section | None:
    async with transaction() as session:
        return (await session.execute(select(Section).where(Section.code == code))).scalar_one_or_none()


async def test_a_portal_editor_creates_renames_and_archives_a_section(console, client):
    root = await make_unit()
    portal = await make_unit(parent=root, name="Cổng Tỉnh ủy Nam Định")
    editor = await make_account(role=Role.EDITOR, unit=portal)
    token = await console_sign_in(console, editor)

    page = await console.get("/console/sections")
    assert page.status_code == 200 and 'href="/console/sections"' in page.text
    national = re.search(r'<tr data-section="van-kien">(.*?)</tr>', page.text, re.S)
    assert national and "Văn kiện" in national.group(1) and "Toàn quốc" in national.group(1)
    assert "chỉ xem" in national.group(1)  # national sections are the system admins'

    created = await console.post(
        "/console/sections",
        data={
            "csrf_token": token,
            "code": "nam-dinh.tin-dia-phuong",
            "name_vi": "Tin địa phương",
            "name_en": "Local news",
            "name_zh": "",
            "position": "20",
        },
    )
    assert created.status_code == 303, created.text
    listing = await console.get(created.headers["location"])
    assert "Đã tạo chuyên mục." in listing.text
    row = re.search(r'<tr data-section="nam-dinh.tin-dia-phuong">(.*?)</tr>', listing.text, re.S)
    assert row and "Cổng Tỉnh ủy Nam Định" in row.group(1) and "EN: Local news" in row.group(1)
    section = await _section("nam-dinh.tin-dia-phuong")
    assert (
        section and section.names == {"vi": "Tin địa phương", "en": "Local news"} and section.position == 20
    )

    saved = await console.post(
        "/console/sections/nam-dinh.tin-dia-phuong",
        data={"csrf_token": token, "name_vi": "Tin Nam Định", "name_fr": "Nouvelles", "position": ""},
    )
    assert saved.status_code == 303
    assert "Đã lưu chuyên mục." in (await console.get(saved.headers["location"])).text
    section = await _section("nam-dinh.tin-dia-phuong")
    assert section and section.names == {"vi": "Tin Nam Định", "fr": "Nouvelles"} and section.position == 20
    public = (await client.get("/v1/sections?lang=fr")).json()
    assert {"code": "nam-dinh.tin-dia-phuong", "name": "Nouvelles"}.items() <= next(
        s for s in public if s["code"] == "nam-dinh.tin-dia-phuong"
    ).items()

    unticked = await console.post(
        "/console/sections/nam-dinh.tin-dia-phuong/archive", data={"csrf_token": token}
    )
    assert unticked.status_code == 422 and "confirmation_required" in unticked.text
    assert (await _section("nam-dinh.tin-dia-phuong")).archived_at is None  # type: ignore[union-attr]
    archived = await console.post(
        "/console/sections/nam-dinh.tin-dia-phuong/archive", data={"csrf_token": token, "confirm": "yes"}
    )
    assert archived.status_code == 303
    after = await console.get(archived.headers["location"])
    assert (
        "Đã lưu trữ chuyên mục" in after.text and 'data-section="nam-dinh.tin-dia-phuong"' not in after.text
    )
    assert "nam-dinh.tin-dia-phuong" not in [s["code"] for s in (await client.get("/v1/sections")).json()]
    assert (await console.get("/console/sections/nam-dinh.tin-dia-phuong")).status_code == 404

    rows = [r for r in await audit_rows("news.section") if r.object_id == str(section.id)]
    assert [(r.action, r.actor_id) for r in rows] == [
        ("news.section.created", editor.id),
        ("news.section.updated", editor.id),
        ("news.section.archived", editor.id),
    ]
    assert rows[1].details["from"]["names"] == {"vi": "Tin địa phương", "en": "Local news"}


async def test_bad_section_input_is_refused_in_words_and_nothing_is_written(console):
    portal = await make_unit()
    editor = await make_account(role=Role.EDITOR, unit=portal)
    token = await console_sign_in(console, editor)
    good = {"csrf_token": token, "code": "dia-phuong", "name_vi": "Địa phương", "position": "100"}
    cases = {
        "upper case code": ({"code": "Dia-Phuong"}, 422, "Mã chỉ được gồm"),
        "long code": ({"code": "a" * 65}, 422, "Mã quá dài: tối đa 64 ký tự."),
        "no Vietnamese name": ({"name_vi": "  ", "name_en": "Local"}, 422, "Cần nhập tên tiếng Việt."),
        "long name": ({"name_en": "N" * 201}, 422, "Tên (en) quá dài: tối đa 200 ký tự."),
        "position not a number": ({"position": "mười"}, 422, "Thứ tự trong danh sách không hợp lệ."),
        "position out of range": ({"position": "99999999999"}, 422, "Thứ tự trong danh sách"),
        "negative position": ({"position": "-1"}, 422, "Thứ tự trong danh sách nằm ngoài khoảng cho phép."),
        "national code taken": ({"code": "van-kien"}, 409, "Đã có chuyên mục mang mã này"),
    }
    for name, (change, status, said) in cases.items():
        response = await console.post("/console/sections", data={**good, **change})
        assert response.status_code == status, (name, response.text[:300])
        assert said in _form_error(response.text), name
    assert await _section("dia-phuong") is None
    assert await audit_rows("news.section") == []


async def test_national_sections_are_the_system_admins_and_a_portals_are_its_editors(console, app):
    root = await make_unit()
    mine, theirs = await make_unit(parent=root), await make_unit(parent=root)
    owner = await make_account(role=Role.EDITOR, unit=theirs)
    owner_token = await console_sign_in(console, owner)
    created = await console.post(
        "/console/sections", data={"csrf_token": owner_token, "code": "cua-ho", "name_vi": "Của họ"}
    )
    assert created.status_code == 303

    transport = httpx.ASGITransport(app=app, client=("203.0.113.41", 52041))
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as http:
        token = await console_sign_in(http, await make_account(role=Role.EDITOR, unit=mine))
        page = await http.get("/console/sections/cua-ho")
        assert page.status_code == 200 and "bạn chỉ được xem" in page.text and "archive" not in page.text
        for path, data in (
            ("/console/sections/cua-ho", {"name_vi": "Chiếm"}),
            ("/console/sections/cua-ho/archive", {"confirm": "yes"}),
            ("/console/sections/van-kien", {"name_vi": "Chiếm"}),
        ):
            refused = await http.post(path, data={"csrf_token": token, **data})
            assert refused.status_code == 403 and "section_not_yours" in refused.text, path
    assert (await _section("cua-ho")).names == {"vi": "Của họ"}  # type: ignore[union-attr]
    assert (await _section("van-kien")).names["vi"] == "Văn kiện"  # type: ignore[union-attr]

    transport = httpx.ASGITransport(app=app, client=("203.0.113.42", 52042))
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as http:
        admin = await make_account(role=Role.SYSTEM_ADMIN, unit=root)
        token = await console_sign_in(http, admin)
        renamed = await http.post(
            "/console/sections/van-kien",
            data={"csrf_token": token, "name_vi": "Văn kiện Đảng", "name_en": "Documents", "position": "1"},
        )
        assert renamed.status_code == 303
    assert (await _section("van-kien")).names == {"vi": "Văn kiện Đảng", "en": "Documents"}  # type: ignore[union-attr]

    # A reporter drafts news but does not edit sections: no menu link, 403.
    transport = httpx.ASGITransport(app=app, client=("203.0.113.43", 52043))
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as http:
        token = await console_sign_in(http, await make_account(role=Role.REPORTER, unit=mine))
        home = await http.get("/console/home")
        assert 'href="/console/sections"' not in home.text
        assert (await http.get("/console/sections")).status_code == 403
        refused = await http.post(
            "/console/sections", data={"csrf_token": token, "code": "x", "name_vi": "X"}
        )
        assert refused.status_code == 403 and "permission_denied" in refused.text
    assert await _section("x") is None


async def test_section_forms_need_the_csrf_token_and_render_names_inert(console):
    portal = await make_unit()
    editor = await make_account(role=Role.EDITOR, unit=portal)
    token = await console_sign_in(console, editor)
    script = '<script>alert("x")</script>'
    forged = await console.post("/console/sections", data={"code": "gia", "name_vi": "Giả"})
    assert forged.status_code == 403 and "csrf" in forged.text
    assert await _section("gia") is None
    created = await console.post(
        "/console/sections", data={"csrf_token": token, "code": "xss", "name_vi": script}
    )
    assert created.status_code == 303
    for path in ("/console/sections", "/console/sections/xss"):
        page = await console.get(path)
        assert script not in page.text and "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page.text
    assert (await console.get("/console/sections/NOT%20A%20CODE")).status_code == 404

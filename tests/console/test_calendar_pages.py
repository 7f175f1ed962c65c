"""The working-calendar page over HTTP: a year's public holidays and ad-hoc days; a system admin
adds a day off or a worked day with a reason and removes it after ticking a box, through
``tracking.calendar`` (audited), and the deadlines' calendar follows at once; refusals in words;
readers read; unit admins and CSRF-less forms are refused."""

from __future__ import annotations

import datetime as dt
import re

import httpx

from auth.roles import Role
from core.db import transaction
from tests.console.support import console_sign_in
from tests.sms.helpers import audit_rows
from tests.support.factories import make_account, make_unit, sign_in
from tracking import calendar as tracking_calendar


def _form_error(html: str) -> str:
    found = re.search(r'data-testid="form-error">(.*?)</p>', html, re.S)
    assert found, "no form error on the page"
    return found.group(1)


def _working_days(html: str) -> int:
    found = re.search(r'data-testid="working-days">[^<]*?(\d+)</p>', html)
    assert found
    return int(found.group(1))


async def test_a_system_admin_adds_and_removes_ad_hoc_days_and_the_calendar_follows(console, client):
    root = await make_unit()
    admin = await make_account(role=Role.SYSTEM_ADMIN, unit=root)
    token = await console_sign_in(console, admin)

    page = await console.get("/console/tracking/calendar", params={"year": "2026"})
    assert page.status_code == 200 and 'href="/console/tracking/calendar"' in page.text
    assert "Tết Nguyên Đán" in page.text and "2026-02-17" in page.text  # the public holidays, in Vietnamese
    assert "Năm nay không có ngày điều chỉnh nào." in page.text
    before = _working_days(page.text)
    assert 240 < before < 255

    saved = await console.post(
        "/console/tracking/calendar",
        data={
            "csrf_token": token,
            "day": "2026-12-31",
            "kind": "off",
            "note": "Nghỉ bù theo thông báo của Chính phủ",
        },
    )
    assert saved.status_code == 303, saved.text
    assert saved.headers["location"] == "/console/tracking/calendar?year=2026&done=day_saved"
    worked = await console.post(
        "/console/tracking/calendar",
        data={"csrf_token": token, "day": "2026-01-01", "kind": "work", "note": "Làm bù"},
    )
    assert worked.status_code == 303
    page = await console.get(saved.headers["location"])
    assert "Đã lưu ngày" in page.text
    row = re.search(r'<tr data-day="2026-12-31" data-kind="off">(.*?)</tr>', page.text, re.S)
    assert row and "Thứ Năm" in row.group(1) and "Nghỉ bù theo thông báo của Chính phủ" in row.group(1)
    assert 'data-day="2026-01-01" data-kind="work"' in page.text and "làm bù (điều chỉnh)" in page.text
    assert _working_days(page.text) == before  # one day off, one holiday worked

    async with transaction() as session:
        calendar = await tracking_calendar.load_calendar(session)
    assert not calendar.is_working_day(dt.date(2026, 12, 31)) and calendar.is_working_day(dt.date(2026, 1, 1))
    listed = await client.get(
        "/v1/tracking/calendar", params={"since": "2026-01-01"}, headers=await sign_in(client, admin)
    )
    assert [(d["day"], d["kind"]) for d in listed.json()] == [("2026-01-01", "work"), ("2026-12-31", "off")]

    unticked = await console.post("/console/tracking/calendar/2026-12-31/delete", data={"csrf_token": token})
    assert unticked.status_code == 422 and "confirmation_required" in unticked.text
    removed = await console.post(
        "/console/tracking/calendar/2026-12-31/delete", data={"csrf_token": token, "confirm": "yes"}
    )
    assert removed.status_code == 303
    page = await console.get(removed.headers["location"])
    assert "Đã bỏ điều chỉnh" in page.text and 'data-day="2026-12-31"' not in page.text
    assert _working_days(page.text) == before + 1
    again = await console.post(
        "/console/tracking/calendar/2026-12-31/delete", data={"csrf_token": token, "confirm": "yes"}
    )
    assert again.status_code == 404 and "Ngày này không có điều chỉnh lịch nào" in again.text

    rows = await audit_rows("tracking.calendar_day")
    assert [(r.action, r.object_id, r.actor_id) for r in rows] == [
        ("tracking.calendar_day.set", "2026-12-31", admin.id),
        ("tracking.calendar_day.set", "2026-01-01", admin.id),
        ("tracking.calendar_day.deleted", "2026-12-31", admin.id),
    ]


async def test_bad_days_and_years_are_refused_in_words(console):
    admin = await make_account(role=Role.SYSTEM_ADMIN, unit=await make_unit())
    token = await console_sign_in(console, admin)
    good = {"csrf_token": token, "day": "2026-05-04", "kind": "off", "note": "Nghỉ"}
    cases = {
        "before 2000": ({"day": "1999-12-31"}, "Ngày phải là một ngày trong khoảng năm 2000 đến năm 2200."),
        "after 2200": ({"day": "2201-01-01"}, "khoảng năm 2000 đến năm 2200"),
        "year 10000": ({"day": "10000-01-01"}, "khoảng năm 2000 đến năm 2200"),
        "no such day": ({"day": "2026-02-30"}, "khoảng năm 2000 đến năm 2200"),
        "not a day": ({"day": "mai"}, "khoảng năm 2000 đến năm 2200"),
        "no reason": ({"note": "   "}, "Cần nhập Lý do."),
        "long reason": ({"note": "ư" * 256}, "Lý do quá dài: tối đa 255 ký tự."),
        "unknown kind": ({"kind": "holiday"}, "Loại không hợp lệ."),
    }
    for name, (change, said) in cases.items():
        response = await console.post("/console/tracking/calendar", data={**good, **change})
        assert response.status_code == 422, (name, response.text[:300])
        assert said in _form_error(response.text), name
    assert await audit_rows("tracking.calendar_day") == []
    for year in ("1999", "2201", "abcd", "２０２６", "20266"):
        page = await console.get("/console/tracking/calendar", params={"year": year})
        assert page.status_code == 400 and "invalid_year" in page.text, year
    assert (
        await console.post(
            "/console/tracking/calendar/1999-01-01/delete", data={"csrf_token": token, "confirm": "yes"}
        )
    ).status_code == 422


async def test_readers_read_and_only_system_admins_change_the_calendar(console, app, client):
    root = await make_unit()
    province = await make_unit(parent=root)
    officer = await make_account(role=Role.TASK_OFFICER, unit=province)
    token = await console_sign_in(console, officer)
    page = await console.get("/console/tracking/calendar", params={"year": "2026"})
    assert page.status_code == 200 and "Tết Nguyên Đán" in page.text
    assert 'data-testid="calendar-form"' not in page.text
    refused = await console.post(
        "/console/tracking/calendar",
        data={"csrf_token": token, "day": "2026-05-04", "kind": "off", "note": "x"},
    )
    assert refused.status_code == 403 and "permission_denied" in refused.text

    transport = httpx.ASGITransport(app=app, client=("203.0.113.51", 52051))
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as http:
        unit_admin = await make_account(role=Role.UNIT_ADMIN, unit=root)
        token = await console_sign_in(http, unit_admin)
        assert 'href="/console/tracking/calendar"' not in (await http.get("/console/home")).text
        assert (await http.get("/console/tracking/calendar")).status_code == 403  # no tasks:read
        refused = await http.post(
            "/console/tracking/calendar",
            data={"csrf_token": token, "day": "2026-05-04", "kind": "off", "note": "Nghỉ"},
        )
        assert refused.status_code == 403 and "Chỉ quản trị hệ thống được sửa lịch làm việc" in refused.text
    # The API refuses the unit admin with the very same policy object.
    api = await client.put(
        "/v1/tracking/calendar",
        json={"day": "2026-05-04", "kind": "off"},
        headers=await sign_in(client, unit_admin),
    )
    assert api.status_code == 403 and api.json()["error"]["message"] == "Only system admins edit the calendar"

    transport = httpx.ASGITransport(app=app, client=("203.0.113.52", 52052))
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as http:
        await console_sign_in(http, await make_account(role=Role.SYSTEM_ADMIN, unit=root))
        forged = await http.post(
            "/console/tracking/calendar", data={"day": "2026-05-04", "kind": "off", "note": "x"}
        )
        assert forged.status_code == 403 and "csrf" in forged.text
    assert await audit_rows("tracking.calendar_day") == []
    denied = {r.object_id for r in await audit_rows("permission.denied")}
    assert "POST /console/tracking/calendar" in denied


async def test_the_pages_read_in_english_on_request(console):
    admin = await make_account(role=Role.SYSTEM_ADMIN, unit=await make_unit())
    token = await console_sign_in(console, admin)
    await console.post("/console/lang", data={"csrf_token": token, "language": "en", "next": "/home"})
    page = await console.get("/console/tracking/calendar", params={"year": "2026"})
    assert "Working calendar 2026" in page.text and "Lunar New Year" in page.text and "Thursday" in page.text
    refused = await console.post(
        "/console/tracking/calendar",
        data={"csrf_token": token, "day": "1999-01-01", "kind": "off", "note": "x"},
    )
    assert "Day must be a date between the years 2000 and 2200." in _form_error(refused.text)
    for path, words in (
        ("/console/admin/units", "New unit"),
        ("/console/sections", "New section of your portal"),
        ("/console/admin/sms", "Switch degraded mode on"),
        ("/console/admin/breakers", "No provider has answered in the window yet."),
    ):
        english = await console.get(path)
        assert english.status_code == 200 and words in english.text, path

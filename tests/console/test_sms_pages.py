"""The SMS degraded-mode and push-breaker pages over HTTP: system admins only (the API's own
``SmsOperator`` policy); switching and closing a breaker need a reason, a ticked box and a fresh
two-factor code, call the same domain functions as the API and are audited; who switched and
when is shown by name."""

from __future__ import annotations

import re

import httpx

from auth.roles import Role
from core import clock
from core.db import transaction
from notifications import breaker
from notifications.sms.degraded import get_state
from tests.console.support import console_sign_in
from tests.sms.helpers import audit_rows, open_breaker
from tests.support.factories import make_account, make_unit, sign_in


async def _degraded() -> bool:
    async with transaction() as session:
        return (await get_state(session)).enabled


def _form_error(html: str) -> str:
    found = re.search(r'data-testid="form-error">(.*?)</p>', html, re.S)
    assert found, "no form error on the page"
    return found.group(1)


async def test_a_system_admin_switches_degraded_mode_on_and_off_with_a_reason_and_a_code(console):
    admin = await make_account(role=Role.SYSTEM_ADMIN, unit=await make_unit())
    token = await console_sign_in(console, admin)
    await open_breaker()
    page = await console.get("/console/admin/sms")
    assert page.status_code == 200 and 'href="/console/admin/sms"' in page.text
    assert 'data-enabled="off"' in page.text and 'data-testid="suggested"' in page.text

    form = {"csrf_token": token, "enabled": "on", "reason": "FCM trả lỗi 503 hàng loạt", "confirm": "yes"}
    switched = await console.post(
        "/console/admin/sms/degraded-mode", data={**form, "totp_code": admin.code()}
    )
    assert switched.status_code == 303, switched.text
    page = await console.get(switched.headers["location"])
    assert "Đã bật chế độ dự phòng SMS." in page.text and 'data-enabled="on"' in page.text
    changed_by = re.search(r'data-testid="changed-by">(.*?)</td>', page.text)
    assert changed_by and changed_by.group(1) == f"Nguyễn Văn {admin.username} ({admin.username})"
    assert "FCM trả lỗi 503 hàng loạt" in page.text and 'data-testid="suggested"' not in page.text
    assert 'name="enabled" value="off"' in page.text  # the form now offers the way back
    assert await _degraded()

    off = {**form, "enabled": "off", "reason": "FCM ổn định trở lại", "totp_code": admin.code()}
    assert (await console.post("/console/admin/sms/degraded-mode", data=off)).status_code == 303
    assert not await _degraded()
    rows = await audit_rows("sms.degraded_mode")
    assert [(r.action, r.actor_id, r.details["reason"]) for r in rows] == [
        ("sms.degraded_mode.on", admin.id, "FCM trả lỗi 503 hàng loạt"),
        ("sms.degraded_mode.off", admin.id, "FCM ổn định trở lại"),
    ]


async def test_the_switch_refuses_an_unticked_box_a_short_reason_and_a_wrong_or_stale_code(console):
    admin = await make_account(role=Role.SYSTEM_ADMIN, unit=await make_unit())
    token = await console_sign_in(console, admin)
    form = {"csrf_token": token, "enabled": "on", "reason": "FCM lỗi", "confirm": "yes"}

    unticked = await console.post("/console/admin/sms/degraded-mode", data={**form, "confirm": ""})
    assert unticked.status_code == 422 and "confirmation_required" in unticked.text
    short = await console.post("/console/admin/sms/degraded-mode", data={**form, "reason": " ab "})
    assert short.status_code == 422 and "Lý do quá ngắn: ít nhất 3 ký tự." in _form_error(short.text)
    long = await console.post("/console/admin/sms/degraded-mode", data={**form, "reason": "x" * 501})
    assert long.status_code == 422 and "Lý do quá dài: tối đa 500 ký tự." in _form_error(long.text)
    sideways = await console.post("/console/admin/sms/degraded-mode", data={**form, "enabled": "maybe"})
    assert sideways.status_code == 422
    wrong = await console.post("/console/admin/sms/degraded-mode", data={**form, "totp_code": "000000"})
    assert wrong.status_code == 403 and "step_up_failed" in wrong.text
    clock.advance(301)  # the sign-in's verification is stale now
    stale = await console.post("/console/admin/sms/degraded-mode", data=form)
    assert stale.status_code == 403 and "step_up_required" in stale.text
    forged = await console.post(
        "/console/admin/sms/degraded-mode", data={**form, "csrf_token": "", "totp_code": admin.code()}
    )
    assert forged.status_code == 403 and "csrf" in forged.text
    assert not await _degraded()
    assert await audit_rows("sms.degraded_mode") == []


async def test_only_system_admins_reach_the_sms_and_breaker_pages(console, app):
    root = await make_unit()
    unit_admin = await make_account(role=Role.UNIT_ADMIN, unit=root)
    token = await console_sign_in(console, unit_admin)
    home = await console.get("/console/home")
    assert 'href="/console/admin/sms"' not in home.text and 'href="/console/admin/breakers"' not in home.text
    for path in ("/console/admin/sms", "/console/admin/breakers"):
        refused = await console.get(path)
        assert refused.status_code == 403 and "system_admin_only" in refused.text, path
    for path, data in (
        ("/console/admin/sms/degraded-mode", {"enabled": "on", "reason": "thử", "confirm": "yes"}),
        ("/console/admin/breakers/fcm/reset", {"reason": "thử", "confirm": "yes"}),
    ):
        refused = await console.post(path, data={"csrf_token": token, "totp_code": unit_admin.code(), **data})
        assert refused.status_code == 403 and "system_admin_only" in refused.text, path
    assert not await _degraded()

    transport = httpx.ASGITransport(app=app, client=("203.0.113.61", 52061))
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as http:
        await console_sign_in(http, await make_account(role=Role.EDITOR, unit=root))
        assert (await http.get("/console/admin/sms")).status_code == 403


async def test_a_system_admin_closes_an_open_breaker_with_a_reason_and_it_is_audited(console, client):
    admin = await make_account(role=Role.SYSTEM_ADMIN, unit=await make_unit())
    token = await console_sign_in(console, admin)
    empty = await console.get("/console/admin/breakers")
    assert empty.status_code == 200 and "Chưa có nhà cung cấp nào phản hồi" in empty.text
    await open_breaker("fcm")
    await open_breaker("apns:sandbox", errors=55)
    page = await console.get("/console/admin/breakers")
    assert 'data-provider="fcm" data-state="open"' in page.text
    assert 'data-provider="apns:sandbox" data-state="open"' in page.text and "100.0 %" in page.text

    form = {"csrf_token": token, "reason": "Google xác nhận đã khắc phục sự cố", "confirm": "yes"}
    unticked = await console.post("/console/admin/breakers/fcm/reset", data={**form, "confirm": ""})
    assert unticked.status_code == 422
    short = await console.post("/console/admin/breakers/fcm/reset", data={**form, "reason": "ok"})
    assert short.status_code == 422 and "Lý do quá ngắn" in _form_error(short.text)
    closed = await console.post("/console/admin/breakers/fcm/reset", data={**form, "totp_code": admin.code()})
    assert closed.status_code == 303, closed.text
    page = await console.get(closed.headers["location"])
    assert "Đã đóng bộ ngắt" in page.text
    assert 'data-provider="fcm" data-state="closed"' in page.text
    assert 'data-provider="apns:sandbox" data-state="open"' in page.text  # only the one asked for
    state = await breaker.state("fcm")
    assert not state.open and state.requests == 0  # a fresh sample

    again = await console.post("/console/admin/breakers/fcm/reset", data={**form, "totp_code": admin.code()})
    assert again.status_code == 409 and "Bộ ngắt này không ở trạng thái mở" in again.text
    unknown = await console.post(
        "/console/admin/breakers/hms/reset", data={**form, "totp_code": admin.code()}
    )
    assert unknown.status_code == 404 and "Không có bộ ngắt cho nhà cung cấp này" in unknown.text
    odd = await console.post("/console/admin/breakers/F%20CM/reset", data={**form, "totp_code": admin.code()})
    assert odd.status_code == 404
    rows = await audit_rows("push.breaker.reset")
    assert [(r.object_id, r.actor_id, r.details["reason"], r.details["errors"]) for r in rows] == [
        ("fcm", admin.id, "Google xác nhận đã khắc phục sự cố", 60)
    ]

    # The API's door: the same use case, the same policy.
    headers = await sign_in(client, admin)
    api = await client.post(
        "/v1/sms/breakers/apns:sandbox/reset", json={"reason": "Apple ổn định"}, headers=headers
    )
    assert api.status_code == 200, api.text
    assert api.json()["open"] is False and api.json()["provider"] == "apns:sandbox"
    assert [r.object_id for r in await audit_rows("push.breaker.reset")] == ["fcm", "apns:sandbox"]

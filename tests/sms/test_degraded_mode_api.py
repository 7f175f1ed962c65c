"""The degraded-mode switch (system admin + fresh step-up, audited), what it changes, and the
operator's SMS routes."""

from __future__ import annotations

from auth.roles import Role
from core import clock
from notifications.sms import sweep
from tests.sms.helpers import TEXT, admin_headers, audit_rows, ledger, notify, person, sink
from tests.support.factories import make_account, make_unit, sign_in

SWITCH_ON = {"enabled": True, "reason": "FCM trả lỗi 503 hàng loạt"}


async def test_switch_requires_a_system_admin_with_a_fresh_step_up(client, sms_settings):
    root = await make_unit()
    unit_admin = await sign_in(client, await make_account(role=Role.UNIT_ADMIN, unit=root))
    denied = await client.put("/v1/sms/degraded-mode", json=SWITCH_ON, headers=unit_admin)
    assert denied.status_code == 403 and denied.json()["error"]["code"] == "system_admin_only"

    account = await make_account(role=Role.SYSTEM_ADMIN, unit=root)
    admin = await sign_in(client, account)
    clock.advance(sms_settings.step_up_max_age_seconds + 30)  # sign-in's verification is now stale
    stale = await client.put("/v1/sms/degraded-mode", json=SWITCH_ON, headers=admin)
    assert stale.status_code == 403 and stale.json()["error"]["code"] == "step_up_required"
    assert (await client.get("/v1/sms/degraded-mode", headers=admin)).json()["enabled"] is False

    verified = await client.post("/v1/auth/mfa/verify", json={"code": account.code()}, headers=admin)
    assert verified.status_code == 204, verified.text
    switched = await client.put("/v1/sms/degraded-mode", json=SWITCH_ON, headers=admin)
    assert switched.status_code == 200, switched.text
    body = switched.json()
    assert body["enabled"] is True and body["changed_by_id"] == str(account.id)
    assert body["reason"] == SWITCH_ON["reason"]
    rows = await audit_rows("sms.degraded_mode")
    assert [(row.action, row.actor_id) for row in rows] == [("sms.degraded_mode.on", account.id)]
    assert "chuong_sms_degraded_mode 1.0" in (await client.get("/metrics")).text

    off = await client.put(
        "/v1/sms/degraded-mode", json={"enabled": False, "reason": "FCM ổn định"}, headers=admin
    )
    assert off.status_code == 200 and off.json()["enabled"] is False
    assert [row.action for row in await audit_rows("sms.degraded_mode")][-1] == "sms.degraded_mode.off"


async def test_switch_rejects_a_missing_reason(client, sms_settings):
    admin = await admin_headers(client, await make_unit())
    response = await client.put("/v1/sms/degraded-mode", json={"enabled": True}, headers=admin)
    assert response.status_code == 422 and "error" in response.json()


async def test_degraded_mode_sends_high_priority_fallbacks_but_never_normal(client, emulator, sms_provider):
    unit = await make_unit()
    admin = await admin_headers(client, unit)
    reader, acknowledged = await person(client, unit), await person(client, unit)
    audience = {"users": [str(reader.id), str(acknowledged.id)]}
    high = await notify(client, admin, audience=audience, priority="high", title="Mất điện diện rộng")
    await notify(client, admin, audience=audience, priority="normal")
    receipt = await client.post(
        f"/v1/inbox/{high}/receipts", json={"event": "received"}, headers=acknowledged.headers
    )
    assert receipt.status_code == 200

    clock.advance(3 * 60)
    await sweep.run_once(sms_provider)
    assert await sink(emulator) == []  # off: high priority never goes by SMS

    assert (await client.put("/v1/sms/degraded-mode", json=SWITCH_ON, headers=admin)).status_code == 200
    stats = await sweep.run_once(sms_provider)
    assert stats.sent == 1
    messages = await sink(emulator)
    assert [(m["to"], m["text"]) for m in messages] == [(reader.phone, TEXT)]
    assert [(row.user_id, row.reason) for row in await ledger(high)] == [(reader.id, "degraded_mode")]

    log = await client.get("/v1/sms/messages", headers=admin)
    assert log.status_code == 200, log.text
    assert [(item["user_id"], item["status"]) for item in log.json()["items"]] == [(str(reader.id), "sent")]
    assert "phone" not in log.text and reader.phone not in log.text


async def test_sms_log_is_scoped_to_the_unit_admins_subtree_and_paginates(client, emulator, sms_provider):
    here, elsewhere = await make_unit(), await make_unit()
    sender = await admin_headers(client, here)
    readers = [await person(client, here, signed_in=False) for _ in range(3)]
    await notify(client, sender, audience={"users": [str(reader.id) for reader in readers]})
    clock.advance(11 * 60)
    await sweep.run_once(sms_provider)
    admin = await admin_headers(client, here)  # the sender's access token has expired meanwhile

    first = (await client.get("/v1/sms/messages", params={"limit": 2}, headers=admin)).json()
    assert len(first["items"]) == 2 and first["next_cursor"]
    second = await client.get(
        "/v1/sms/messages", params={"limit": 2, "cursor": first["next_cursor"]}, headers=admin
    )
    assert len(second.json()["items"]) == 1 and second.json()["next_cursor"] is None
    bad = await client.get("/v1/sms/messages", params={"cursor": "abc"}, headers=admin)
    assert bad.status_code == 422

    own_admin = await sign_in(client, await make_account(role=Role.UNIT_ADMIN, unit=here))
    other_admin = await sign_in(client, await make_account(role=Role.UNIT_ADMIN, unit=elsewhere))
    assert len((await client.get("/v1/sms/messages", headers=own_admin)).json()["items"]) == 3
    assert (await client.get("/v1/sms/messages", headers=other_admin)).json()["items"] == []
    member = await person(client, here)
    assert (await client.get("/v1/sms/messages", headers=member.headers)).status_code == 403
    assert (await client.get("/v1/sms/status", headers=own_admin)).status_code == 403

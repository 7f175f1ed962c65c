"""``POST /v1/sms/breakers/{provider}/reset``: a system admin with a fresh step-up, as themself,
closes an open breaker with a reason (audited ``push.breaker.reset``); a fresh sample starts, so
a provider that still fails opens it again with a new alert."""

from __future__ import annotations

from auth.roles import Role
from core import clock
from notifications import breaker
from tests.sms.helpers import audit_rows, open_breaker
from tests.support.factories import make_account, make_unit, sign_in

REASON = {"reason": "FCM đã ổn định, ít lưu lượng"}


async def test_reset_closes_an_open_breaker_and_a_failing_provider_opens_it_again(client, redis):
    admin = await make_account(role=Role.SYSTEM_ADMIN, unit=await make_unit())
    headers = await sign_in(client, admin)
    await open_breaker("fcm")
    response = await client.post("/v1/sms/breakers/fcm/reset", json=REASON, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json() | {"opened_at": None} == {
        "provider": "fcm",
        "requests": 0,
        "errors": 0,
        "error_rate": 0.0,
        "open": False,
        "opened_at": None,
    }
    [row] = await audit_rows("push.breaker.reset")
    assert (row.actor_id, row.object_id, row.details["reason"]) == (admin.id, "fcm", REASON["reason"])
    assert row.details["requests"] == 60 and row.details["error_rate"] == "1.0000"

    await open_breaker("fcm")  # still failing: the fresh sample opens it again, with its alert
    assert [r.action for r in await audit_rows("push.breaker.")][-1] == "push.breaker.opened"


async def test_reset_refusals(client, redis):
    root = await make_unit()
    admin = await make_account(role=Role.SYSTEM_ADMIN, unit=root)
    headers = await sign_in(client, admin)
    await open_breaker("fcm", errors=50)
    assert (
        await client.post("/v1/sms/breakers/fcm/reset", json={"reason": "x"}, headers=headers)
    ).status_code == 422
    assert (await client.post("/v1/sms/breakers/fcm/reset", json={}, headers=headers)).status_code == 422
    bad_name = await client.post("/v1/sms/breakers/FCM%20x/reset", json=REASON, headers=headers)
    assert bad_name.status_code == 422
    unknown = await client.post("/v1/sms/breakers/hms/reset", json=REASON, headers=headers)
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "breaker_not_found"
    unit_admin = await sign_in(client, await make_account(role=Role.UNIT_ADMIN, unit=root))
    refused = await client.post("/v1/sms/breakers/fcm/reset", json=REASON, headers=unit_admin)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "system_admin_only"
    clock.advance(301)
    stale = await client.post("/v1/sms/breakers/fcm/reset", json=REASON, headers=headers)
    assert stale.status_code == 403 and stale.json()["error"]["code"] == "step_up_required"
    assert (await breaker.state("fcm")).open

    verified = await client.post("/v1/auth/mfa/verify", json={"code": admin.code()}, headers=headers)
    assert verified.status_code == 204
    assert (await client.post("/v1/sms/breakers/fcm/reset", json=REASON, headers=headers)).status_code == 200
    closed = await client.post("/v1/sms/breakers/fcm/reset", json=REASON, headers=headers)
    assert closed.status_code == 409 and closed.json()["error"]["code"] == "breaker_not_open"
    assert len(await audit_rows("push.breaker.reset")) == 1

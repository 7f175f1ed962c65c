"""Mandatory TOTP (D-22): enrolment, single use, window, throttling, recovery, step-up."""

import asyncio

from sqlalchemy import select, text

from auth.models import TotpCredential
from auth.roles import Role
from auth.totp import code_for
from core import clock
from tests.support.factories import make_account, make_unit, password_only, sign_in


def bearer(token: object) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_enrolment_flow_unlocks_the_api_and_never_returns_the_secret_again(client, owner_engine):
    unit = await make_unit()
    editor = await make_account(role=Role.EDITOR, unit=unit, enrolled=False)
    login = await password_only(client, editor)
    assert login["restriction"] == "mfa_enrolment_required"
    headers = bearer(login["access_token"])

    assert (await client.get("/v1/units", headers=headers)).status_code == 403
    enrol = await client.post("/v1/auth/mfa/enrol", headers=headers)
    assert enrol.status_code == 200, enrol.text
    secret = enrol.json()["secret"]
    assert enrol.json()["otpauth_uri"].startswith("otpauth://totp/")
    assert "<svg" in enrol.json()["qr_svg"]

    code = code_for(secret, at=clock.utcnow())
    confirm = await client.post("/v1/auth/mfa/enrol/confirm", headers=headers, json={"code": code})
    assert confirm.status_code == 200, confirm.text
    codes = confirm.json()["recovery_codes"]
    assert len(codes) == 10 and len(set(codes)) == 10

    assert (await client.get("/v1/units", headers=headers)).status_code == 200
    # Enrolled: a second enrolment is refused, and nothing returns the secret any more.
    assert (await client.post("/v1/auth/mfa/enrol", headers=headers)).status_code in (403, 409)
    me = await client.get("/v1/auth/me", headers=headers)
    assert secret not in me.text
    # The secret is stored encrypted, not in clear.
    async with owner_engine.connect() as conn:
        stored = (await conn.execute(select(TotpCredential.secret_enc))).scalar_one()
        assert secret.encode() not in stored
        audit_text = (
            await conn.execute(text("SELECT string_agg(details::text, ' ') FROM audit_log"))
        ).scalar_one()
        assert secret not in audit_text


async def test_password_only_session_is_refused_everywhere_but_mfa(client):
    unit = await make_unit()
    admin = await make_account(role=Role.SYSTEM_ADMIN, unit=unit)
    login = await password_only(client, admin)
    assert login["restriction"] == "mfa_required"
    headers = bearer(login["access_token"])
    response = await client.get("/v1/users", headers=headers)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "mfa_required"
    verify = await client.post("/v1/auth/mfa/verify", headers=headers, json={"code": admin.code()})
    assert verify.status_code == 204, verify.text
    assert (await client.get("/v1/users", headers=headers)).status_code == 200


async def test_member_needs_no_totp(client):
    unit = await make_unit()
    member = await make_account(role=Role.MEMBER, unit=unit, enrolled=False)
    login = await password_only(client, member)
    assert login["restriction"] is None
    assert (await client.get("/v1/auth/sessions", headers=bearer(login["access_token"]))).status_code == 200


async def test_concurrent_requests_with_the_same_code_yield_exactly_one_success(client, owner_engine):
    unit = await make_unit()
    admin = await make_account(role=Role.UNIT_ADMIN, unit=unit)
    sessions = [await password_only(client, admin) for _ in range(6)]
    code = admin.code()
    responses = await asyncio.gather(
        *(
            client.post("/v1/auth/mfa/verify", headers=bearer(s["access_token"]), json={"code": code})
            for s in sessions
        )
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [204, 401, 401, 401, 401, 401], [r.text for r in responses]
    replayed = [r for r in responses if r.status_code == 401]
    assert {r.json()["error"]["code"] for r in replayed} == {"mfa_code_replayed"}
    async with owner_engine.connect() as conn:
        count = (
            await conn.execute(text("SELECT count(*) FROM audit_log WHERE action = 'mfa.replayed'"))
        ).scalar_one()
    assert count == 5


async def test_a_code_is_accepted_once_even_sequentially(client):
    unit = await make_unit()
    admin = await make_account(role=Role.UNIT_ADMIN, unit=unit)
    first, second = await password_only(client, admin), await password_only(client, admin)
    code = admin.code()
    ok = await client.post("/v1/auth/mfa/verify", headers=bearer(first["access_token"]), json={"code": code})
    assert ok.status_code == 204
    again = await client.post(
        "/v1/auth/mfa/verify", headers=bearer(second["access_token"]), json={"code": code}
    )
    assert again.status_code == 401


async def test_window_accepts_one_step_either_side_and_nothing_further(client):
    unit = await make_unit()
    admin = await make_account(role=Role.UNIT_ADMIN, unit=unit)
    assert admin.totp_secret
    clock.advance(300)
    # Start just after a 30-second step begins, so that the cases below (a second or two of real
    # time) never straddle a step boundary (it flaked about once in twenty runs).
    clock.advance(30 - clock.utcnow().timestamp() % 30 + 0.5)
    now = clock.utcnow()
    import datetime as dt

    def at(seconds: int) -> str:
        return code_for(admin.totp_secret or "", at=now + dt.timedelta(seconds=seconds))

    cases = [(-60, 401), (+60, 401), (-30, 204), (0, 204), (+30, 204)]
    for offset, expected in cases:
        login = await password_only(client, admin)
        response = await client.post(
            "/v1/auth/mfa/verify", headers=bearer(login["access_token"]), json={"code": at(offset)}
        )
        assert response.status_code == expected, (offset, response.text)


async def test_failures_throttle_the_account_whatever_the_ip(app, client):
    import httpx

    unit = await make_unit()
    admin = await make_account(role=Role.UNIT_ADMIN, unit=unit)
    for index in range(3):
        transport = httpx.ASGITransport(app=app, client=(f"198.51.100.{index + 1}", 4000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as other:
            bad = await other.post(
                "/v1/auth/login", json={"username": admin.username, "password": "wrong" * 3}
            )
            assert bad.status_code == 401
    # Third failure started the back-off: even the right password waits, from yet another IP.
    response = await client.post(
        "/v1/auth/login", json={"username": admin.username, "password": admin.password}
    )
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "throttled"
    assert int(response.headers["Retry-After"]) >= 1
    clock.advance(2)
    assert (
        await client.post("/v1/auth/login", json={"username": admin.username, "password": admin.password})
    ).status_code == 200


async def test_lockout_after_repeated_failures_and_unlock_by_unit_admin(client):
    unit = await make_unit()
    officer = await make_account(role=Role.TASK_OFFICER, unit=unit)
    admin = await make_account(role=Role.UNIT_ADMIN, unit=unit)
    for _ in range(10):
        await client.post(
            "/v1/auth/login", json={"username": officer.username, "password": "not the password"}
        )
        clock.advance(1000)  # wait out each back-off so that every attempt counts
    locked = await client.post(
        "/v1/auth/login", json={"username": officer.username, "password": officer.password}
    )
    assert locked.status_code == 429 and locked.json()["error"]["code"] == "account_locked"
    headers = await sign_in(client, admin)
    unlock = await client.post(f"/v1/users/{officer.id}/unlock", headers=headers)
    assert unlock.status_code == 200, unlock.text
    ok = await client.post(
        "/v1/auth/login", json={"username": officer.username, "password": officer.password}
    )
    assert ok.status_code == 200


async def test_lockout_expires_after_the_configured_time(client):
    unit = await make_unit()
    officer = await make_account(role=Role.TASK_OFFICER, unit=unit)
    for _ in range(10):
        await client.post(
            "/v1/auth/login", json={"username": officer.username, "password": "not the password"}
        )
        clock.advance(1000)
    clock.advance(1801)
    ok = await client.post(
        "/v1/auth/login", json={"username": officer.username, "password": officer.password}
    )
    assert ok.status_code == 200


async def test_wrong_totp_codes_count_towards_the_throttle(client):
    unit = await make_unit()
    admin = await make_account(role=Role.UNIT_ADMIN, unit=unit)
    login = await password_only(client, admin)
    for _ in range(3):
        r = await client.post(
            "/v1/auth/mfa/verify", headers=bearer(login["access_token"]), json={"code": "000000"}
        )
        assert r.status_code in (401, 429)
    r = await client.post(
        "/v1/auth/mfa/verify", headers=bearer(login["access_token"]), json={"code": admin.code()}
    )
    # admin.code() advanced the clock by 30 s, past the short back-off, so the right code works now.
    assert r.status_code == 204


async def test_recovery_code_is_single_use(client):
    unit = await make_unit()
    editor = await make_account(role=Role.EDITOR, unit=unit, enrolled=False)
    login = await password_only(client, editor)
    headers = bearer(login["access_token"])
    secret = (await client.post("/v1/auth/mfa/enrol", headers=headers)).json()["secret"]
    codes = (
        await client.post(
            "/v1/auth/mfa/enrol/confirm", headers=headers, json={"code": code_for(secret, at=clock.utcnow())}
        )
    ).json()["recovery_codes"]
    again = await password_only(client, editor)
    used = await client.post(
        "/v1/auth/mfa/recover", headers=bearer(again["access_token"]), json={"recovery_code": codes[0]}
    )
    assert used.status_code == 200 and used.json() == {"remaining": 9}
    third = await password_only(client, editor)
    reuse = await client.post(
        "/v1/auth/mfa/recover", headers=bearer(third["access_token"]), json={"recovery_code": codes[0]}
    )
    assert reuse.status_code == 401


async def test_step_up_is_required_for_sensitive_actions_after_five_minutes(client):
    unit = await make_unit()
    admin = await make_account(role=Role.UNIT_ADMIN, unit=unit)
    target = await make_account(role=Role.EDITOR, unit=unit)
    headers = await sign_in(client, admin)
    clock.advance(301)
    body = {"new_password": "a brand new passphrase 7", "reset_mfa": True}
    stale = await client.post(f"/v1/users/{target.id}/reset-credentials", headers=headers, json=body)
    assert stale.status_code == 403 and stale.json()["error"]["code"] == "step_up_required"
    assert (
        await client.post("/v1/auth/mfa/verify", headers=headers, json={"code": admin.code()})
    ).status_code == 204
    fresh = await client.post(f"/v1/users/{target.id}/reset-credentials", headers=headers, json=body)
    assert fresh.status_code == 200, fresh.text


async def test_enrolments_started_at_once_leave_one_secret_and_no_error(client, owner_engine):
    # Each read "no credential yet" and inserted one: the second insert broke the primary key (500).
    from core.crypto import decrypt_text

    unit = await make_unit()
    for _ in range(3):  # a burst per new account: the race is lost by chance otherwise
        editor = await make_account(role=Role.EDITOR, unit=unit, enrolled=False)
        headers = bearer((await password_only(client, editor))["access_token"])
        answers = await asyncio.gather(
            *(client.post("/v1/auth/mfa/enrol", headers=headers) for _ in range(6))
        )
        assert [answer.status_code for answer in answers] == [200] * 6, [answer.text for answer in answers]
        async with owner_engine.connect() as conn:
            stored = (
                (
                    await conn.execute(
                        text("SELECT secret_enc FROM totp_credentials WHERE user_id = :id"), {"id": editor.id}
                    )
                )
                .scalars()
                .all()
            )
        assert len(stored) == 1
        assert decrypt_text(stored[0]) in {answer.json()["secret"] for answer in answers}


async def test_recovery_codes_replaced_twice_at_once_leave_one_set_valid(client, owner_engine):
    # Both requests deleted the codes they saw and added ten: the first answer's ten stayed valid
    # next to the second's, though each answer said it replaced the others.
    from auth.totp import hash_recovery_code

    unit = await make_unit()
    editor = await make_account(role=Role.EDITOR, unit=unit)
    headers = await sign_in(client, editor)
    answers = await asyncio.gather(
        *(client.post("/v1/auth/mfa/recovery-codes", headers=headers) for _ in range(3))
    )
    assert [answer.status_code for answer in answers] == [200] * 3, [answer.text for answer in answers]
    async with owner_engine.connect() as conn:
        live = set(
            (
                await conn.execute(
                    text("SELECT code_hash FROM recovery_codes WHERE user_id = :id AND used_at IS NULL"),
                    {"id": editor.id},
                )
            ).scalars()
        )
    sets = [{hash_recovery_code(code) for code in answer.json()["recovery_codes"]} for answer in answers]
    assert live in sets  # exactly one answer's ten codes, no more

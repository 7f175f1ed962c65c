"""Passkeys through the API with real WebAuthn data (tests/support/soft_authenticator.py builds
real attestation objects and ES256 assertions; py_webauthn verifies them as it verifies a
browser's): enrolment, sign-in, step-up, and every refusal the issue names."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import select

from auth.audit.models import AuditLog
from auth.models import Unit, WebauthnCredential
from auth.roles import Role
from core import clock
from core.config import get_settings
from core.db import transaction
from tests.support.factories import Account, make_account, make_unit, password_only, sign_in
from tests.support.soft_authenticator import SoftAuthenticator, b64url

OPTIONS = "/v1/auth/passkeys/registration/options"
REGISTER = "/v1/auth/passkeys/registration"
ASSERT_OPTIONS = "/v1/auth/passkeys/assertion/options"
ASSERT = "/v1/auth/passkeys/assertion"


def _code(response: httpx.Response) -> str:
    code: str = response.json()["error"]["code"]
    return code


async def _registration_options(client: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, Any]:
    response = await client.post(OPTIONS, headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _enrol(
    client: httpx.AsyncClient, headers: dict[str, str], key: SoftAuthenticator, name: str = "YubiKey 5 NFC"
) -> dict[str, Any]:
    options = await _registration_options(client, headers)
    done = await client.post(
        REGISTER,
        headers=headers,
        json={
            "ceremony_id": options["ceremony_id"],
            "name": name,
            "credential": key.create(options["options"]),
        },
    )
    assert done.status_code == 201, done.text
    body: dict[str, Any] = done.json()
    return body


async def _assertion_options(client: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, Any]:
    response = await client.post(ASSERT_OPTIONS, headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _assert(
    client: httpx.AsyncClient, headers: dict[str, str], key: SoftAuthenticator, **kwargs: Any
) -> httpx.Response:
    options = await _assertion_options(client, headers)
    credential = key.get(options["options"], **kwargs)
    return await client.post(
        ASSERT, headers=headers, json={"ceremony_id": options["ceremony_id"], "credential": credential}
    )


async def _restricted(client: httpx.AsyncClient, account: Account) -> tuple[dict[str, str], object]:
    data = await password_only(client, account)
    return {"Authorization": f"Bearer {data['access_token']}"}, data["restriction"]


async def _actions() -> list[str]:
    async with transaction() as session:
        return list((await session.scalars(select(AuditLog.action).order_by(AuditLog.seq))).all())


async def _leader_with_passkey(
    client: httpx.AsyncClient, **key_options: Any
) -> tuple[Account, SoftAuthenticator]:
    unit = await make_unit()
    leader = await make_account(role=Role.LEADER, unit=unit)
    key = SoftAuthenticator(**key_options)
    await _enrol(client, await sign_in(client, leader), key)
    return leader, key


@pytest.mark.parametrize("attestation", ["packed", "none"])
async def test_a_leader_enrols_a_passkey_and_from_then_on_signs_in_only_with_it(client, attestation):
    unit = await make_unit()
    leader = await make_account(role=Role.LEADER, unit=unit)
    headers = await sign_in(client, leader)  # TOTP, as everyone until now
    key = SoftAuthenticator(attestation=attestation)
    enrolled = await _enrol(client, headers, key, name="Khoá của Bí thư")
    assert enrolled["name"] == "Khoá của Bí thư" and enrolled["transports"] == ["usb", "nfc"]
    listed = (await client.get("/v1/auth/passkeys", headers=headers)).json()
    assert [p["id"] for p in listed] == [enrolled["id"]] and listed[0]["last_used_at"] is None

    restricted, restriction = await _restricted(client, leader)
    assert restriction == "passkey_required"
    refused = await client.get("/v1/auth/sessions", headers=restricted)
    assert refused.status_code == 403 and _code(refused) == "passkey_required"
    assert (await client.get("/v1/auth/passkeys", headers=restricted)).status_code == 403
    # A code, however right, signs a leader with a passkey in no more (a phishing page can relay it).
    totp = await client.post("/v1/auth/mfa/verify", headers=restricted, json={"code": leader.code()})
    assert totp.status_code == 403 and _code(totp) == "passkey_required"
    with_code = (
        await client.post(
            "/v1/auth/login",
            json={"username": leader.username, "password": leader.password, "totp_code": leader.code()},
        )
    ).json()
    assert with_code["restriction"] == "passkey_required"

    assert (await _assert(client, restricted, key)).status_code == 204
    assert (await client.get("/v1/auth/sessions", headers=restricted)).status_code == 200
    listed = (await client.get("/v1/auth/passkeys", headers=restricted)).json()
    assert listed[0]["last_used_at"] is not None
    actions = await _actions()
    for action in (
        "passkey.registration_started",
        "passkey.registered",
        "passkey.assertion_started",
        "passkey.verified",
    ):
        assert action in actions


async def test_a_replayed_assertion_is_refused(client):
    leader, key = await _leader_with_passkey(client)
    headers, _ = await _restricted(client, leader)
    options = await _assertion_options(client, headers)
    body = {"ceremony_id": options["ceremony_id"], "credential": key.get(options["options"])}
    assert (await client.post(ASSERT, headers=headers, json=body)).status_code == 204
    # The same answer again: its challenge was spent.
    again = await client.post(ASSERT, headers=headers, json=body)
    assert again.status_code == 400 and _code(again) == "passkey_challenge_invalid"
    # The same signed answer under a fresh challenge: the challenge it signed is not this one.
    fresh = await _assertion_options(client, headers)
    replayed = await client.post(
        ASSERT, headers=headers, json={"ceremony_id": fresh["ceremony_id"], "credential": body["credential"]}
    )
    assert replayed.status_code == 401 and _code(replayed) == "invalid_passkey"


@pytest.mark.parametrize(
    ("where", "reason"),
    [
        ({"origin": "https://dangcongsan-vn.login.example"}, "wrong_origin"),
        ({"rp_id": "dangcongsan-vn.login.example"}, "wrong_rp_id"),
    ],
)
async def test_an_assertion_for_another_origin_or_rp_id_is_refused(client, where, reason):
    leader, key = await _leader_with_passkey(client)
    headers, _ = await _restricted(client, leader)
    refused = await _assert(client, headers, key, **where)
    assert refused.status_code == 401 and _code(refused) == "invalid_passkey"
    async with transaction() as session:
        row = (
            await session.execute(
                select(AuditLog.details)
                .where(AuditLog.action == "passkey.failed")
                .order_by(AuditLog.seq.desc())
            )
        ).first()
    assert row is not None and row.details["reason"] == reason
    assert (await client.get("/v1/auth/sessions", headers=headers)).status_code == 403


async def test_a_registration_from_another_origin_or_rp_id_is_refused(client):
    unit = await make_unit()
    leader = await make_account(role=Role.LEADER, unit=unit)
    headers = await sign_in(client, leader)
    for where in ({"origin": "https://evil.example"}, {"rp_id": "evil.example"}):
        options = await _registration_options(client, headers)
        refused = await client.post(
            REGISTER,
            headers=headers,
            json={
                "ceremony_id": options["ceremony_id"],
                "name": "k",
                "credential": SoftAuthenticator().create(options["options"], **where),
            },
        )
        assert refused.status_code == 400 and _code(refused) == "passkey_invalid"
    assert (await client.get("/v1/auth/passkeys", headers=headers)).json() == []
    assert (await _actions()).count("passkey.registration_failed") == 2


async def test_a_cloned_authenticator_is_detected_and_the_key_refused_from_then_on(client):
    leader, key = await _leader_with_passkey(client)
    clone = key.clone()  # the key copied while its counter stood at 0
    headers, _ = await _restricted(client, leader)
    assert (await _assert(client, headers, key)).status_code == 204
    assert (await _assert(client, headers, key)).status_code == 204  # counter now 2

    other, _ = await _restricted(client, leader)
    cloned = await _assert(client, other, clone)  # reports 1: behind the genuine key
    assert cloned.status_code == 401 and _code(cloned) == "invalid_passkey"
    async with transaction() as session:
        row = (await session.scalars(select(WebauthnCredential))).one()
        assert row.clone_suspected_at is not None and row.sign_count == 2
    assert "passkey.clone_suspected" in await _actions()
    # Neither copy signs in any more: the credential is offered no more, so the leader is told
    # to enrol another (the two-admin reset if it was the only one).
    third, _ = await _restricted(client, leader)
    offered = await client.post(ASSERT_OPTIONS, headers=third)
    assert offered.status_code == 403 and _code(offered) == "passkey_enrolment_required"
    listed = (
        await client.get(f"/v1/users/{leader.id}/passkeys", headers=await _admin_headers(client, leader))
    ).json()
    assert listed[0]["clone_suspected_at"] is not None


async def _unit_of(account: Account) -> Unit:
    async with transaction() as session:
        unit = await session.get(Unit, account.unit_id)
    assert unit is not None
    return unit


async def _admin_headers(client: httpx.AsyncClient, account: Account) -> dict[str, str]:
    """A unit admin of ``account``'s unit, signed in."""
    admin = await make_account(role=Role.UNIT_ADMIN, unit=await _unit_of(account))
    return await sign_in(client, admin)


async def test_an_expired_challenge_is_refused(client):
    leader, key = await _leader_with_passkey(client)
    headers, _ = await _restricted(client, leader)
    options = await _assertion_options(client, headers)
    clock.advance(get_settings().webauthn_challenge_seconds + 1)
    late = await client.post(
        ASSERT,
        headers=headers,
        json={"ceremony_id": options["ceremony_id"], "credential": key.get(options["options"])},
    )
    assert late.status_code == 400 and _code(late) == "passkey_challenge_invalid"


async def test_a_challenge_serves_only_the_session_that_asked_for_it(client):
    leader, key = await _leader_with_passkey(client)
    first, _ = await _restricted(client, leader)
    second, _ = await _restricted(client, leader)
    options = await _assertion_options(client, first)
    stolen = await client.post(
        ASSERT,
        headers=second,
        json={"ceremony_id": options["ceremony_id"], "credential": key.get(options["options"])},
    )
    assert stolen.status_code == 400 and _code(stolen) == "passkey_challenge_invalid"


async def test_user_verification_is_required(client):
    unit = await make_unit()
    leader = await make_account(role=Role.LEADER, unit=unit)
    headers = await sign_in(client, leader)
    presence_only = SoftAuthenticator(verifies_user=False)
    options = await _registration_options(client, headers)
    assert options["options"]["authenticatorSelection"]["userVerification"] == "required"
    refused = await client.post(
        REGISTER,
        headers=headers,
        json={
            "ceremony_id": options["ceremony_id"],
            "name": "k",
            "credential": presence_only.create(options["options"]),
        },
    )
    assert refused.status_code == 400
    # A key that verified the user at enrolment but not at sign-in.
    key = SoftAuthenticator()
    await _enrol(client, headers, key)
    restricted, _ = await _restricted(client, leader)
    key.verifies_user = False
    assert (await _assert(client, restricted, key)).status_code == 401


async def test_inputs_the_database_cannot_hold_are_refused_with_4xx(client):
    unit = await make_unit()
    leader = await make_account(role=Role.LEADER, unit=unit)
    headers = await sign_in(client, leader)
    options = await _registration_options(client, headers)
    long_id = SoftAuthenticator(credential_id=b"\x01" * 1100)
    too_long = await client.post(
        REGISTER,
        headers=headers,
        json={
            "ceremony_id": options["ceremony_id"],
            "name": "k",
            "credential": long_id.create(options["options"]),
        },
    )
    assert too_long.status_code == 422
    options = await _registration_options(client, headers)
    credential = SoftAuthenticator().create(options["options"])
    for name in ("", "x" * 65, "a\x00b"):
        bad = await client.post(
            REGISTER,
            headers=headers,
            json={"ceremony_id": options["ceremony_id"], "name": name, "credential": credential},
        )
        assert bad.status_code == 422, name
    garbage = {
        **credential,
        "response": {**credential["response"], "attestationObject": b64url(b"\xff" * 40)},
    }
    broken = await client.post(
        REGISTER,
        headers=headers,
        json={"ceremony_id": options["ceremony_id"], "name": "k", "credential": garbage},
    )
    assert broken.status_code == 400 and _code(broken) == "passkey_invalid"
    unknown = await client.post(
        REGISTER, headers=headers, json={"ceremony_id": "x" * 65, "name": "k", "credential": credential}
    )
    assert unknown.status_code == 422
    # 1023 bytes is the limit WebAuthn sets and the table holds.
    options = await _registration_options(client, headers)
    longest = SoftAuthenticator(credential_id=b"\x02" * 1023)
    assert (
        await client.post(
            REGISTER,
            headers=headers,
            json={
                "ceremony_id": options["ceremony_id"],
                "name": "k",
                "credential": longest.create(options["options"]),
            },
        )
    ).status_code == 201


async def test_the_same_authenticator_cannot_be_registered_twice(client):
    unit = await make_unit()
    leader = await make_account(role=Role.LEADER, unit=unit)
    headers = await sign_in(client, leader)
    key = SoftAuthenticator()
    first = await _enrol(client, headers, key)
    options = await _registration_options(client, headers)
    assert [d["id"] for d in options["options"]["excludeCredentials"]] == [b64url(key.credential_id)]
    again = await client.post(
        REGISTER,
        headers=headers,
        json={
            "ceremony_id": options["ceremony_id"],
            "name": "x",
            "credential": key.create(options["options"]),
        },
    )
    assert again.status_code == 409
    assert [p["id"] for p in (await client.get("/v1/auth/passkeys", headers=headers)).json()] == [first["id"]]


async def test_adding_or_removing_a_passkey_needs_a_fresh_step_up_and_is_audited(client):
    leader, key = await _leader_with_passkey(client)
    headers, _ = await _restricted(client, leader)
    assert (await _assert(client, headers, key)).status_code == 204
    spare = SoftAuthenticator(attestation="none")
    spare_out = await _enrol(client, headers, spare, name="Dự phòng")
    clock.advance(get_settings().step_up_max_age_seconds + 1)
    stale = await client.delete(f"/v1/auth/passkeys/{spare_out['id']}", headers=headers)
    assert stale.status_code == 403 and _code(stale) == "step_up_required"
    assert (await client.post(OPTIONS, headers=headers)).status_code == 403
    # A fresh passkey assertion is the step-up.
    assert (await _assert(client, headers, key)).status_code == 204
    assert (await client.delete(f"/v1/auth/passkeys/{spare_out['id']}", headers=headers)).status_code == 204
    assert len((await client.get("/v1/auth/passkeys", headers=headers)).json()) == 1
    assert "passkey.revoked" in await _actions()


async def test_an_admin_lists_and_revokes_within_their_subtree_only(client):
    unit = await make_unit()
    other_unit = await make_unit()
    leader = await make_account(role=Role.LEADER, unit=unit)
    key = SoftAuthenticator()
    enrolled = await _enrol(client, await sign_in(client, leader), key)
    admin = await make_account(role=Role.UNIT_ADMIN, unit=unit)
    outsider = await make_account(role=Role.UNIT_ADMIN, unit=other_unit)
    outsider_headers = await sign_in(client, outsider)
    assert (await client.get(f"/v1/users/{leader.id}/passkeys", headers=outsider_headers)).status_code == 404
    foreign = await client.delete(
        f"/v1/users/{leader.id}/passkeys/{enrolled['id']}", headers=outsider_headers
    )
    assert foreign.status_code == 404
    admin_headers = await sign_in(client, admin)
    listed = (await client.get(f"/v1/users/{leader.id}/passkeys", headers=admin_headers)).json()
    assert [p["name"] for p in listed] == ["YubiKey 5 NFC"]
    revoked = await client.delete(f"/v1/users/{leader.id}/passkeys/{enrolled['id']}", headers=admin_headers)
    assert revoked.status_code == 204
    async with transaction() as session:
        details = (
            await session.scalars(select(AuditLog.details).where(AuditLog.action == "passkey.revoked"))
        ).one()
    assert details["by_admin"] is True
    # With no passkey left the leader signs in with the code again.
    assert (await password_only(client, leader))["restriction"] == "mfa_required"


async def test_a_leader_who_lost_every_passkey_goes_through_the_two_admin_reset(client):
    leader, _key = await _leader_with_passkey(client)
    restricted, _ = await _restricted(client, leader)
    recovery = await client.post(
        "/v1/auth/mfa/recover", headers=restricted, json={"recovery_code": "ABCD-EFGH"}
    )
    assert recovery.status_code == 403 and _code(recovery) == "passkey_required"
    unit = await _unit_of(leader)
    first = await make_account(role=Role.UNIT_ADMIN, unit=unit)
    second = await make_account(role=Role.UNIT_ADMIN, unit=unit)
    filed = await client.post(
        f"/v1/users/{leader.id}/mfa-reset", headers=await sign_in(client, first), json={}
    )
    assert filed.status_code == 201, filed.text
    confirmed = await client.post(
        f"/v1/mfa-resets/{filed.json()['id']}/confirm", headers=await sign_in(client, second)
    )
    assert confirmed.status_code == 200, confirmed.text
    async with transaction() as session:
        assert (await session.scalars(select(WebauthnCredential))).all() == []
        details = (
            await session.scalars(select(AuditLog.details).where(AuditLog.action == "mfa_reset.confirmed"))
        ).one()
    assert details["passkeys_removed"] == 1
    assert (await client.get("/v1/auth/me", headers=restricted)).status_code == 401  # sessions ended
    assert (await password_only(client, leader))["restriction"] == "mfa_enrolment_required"


async def test_the_policy_setting_extends_the_rule_to_admins_and_a_passkey_is_their_step_up(
    client, monkeypatch
):
    monkeypatch.setattr(
        get_settings(), "passkey_required_roles", ["leader", "system_admin", "unit_admin", "publisher"]
    )
    unit = await make_unit()
    admin = await make_account(role=Role.UNIT_ADMIN, unit=unit)
    key = SoftAuthenticator()
    await _enrol(client, await sign_in(client, admin), key)
    headers, restriction = await _restricted(client, admin)
    assert restriction == "passkey_required"
    assert (await _assert(client, headers, key)).status_code == 204
    # A role change is a step-up action; a stale step-up is refused, a fresh passkey accepted.
    editor = await make_account(role=Role.EDITOR, unit=unit)
    clock.advance(get_settings().step_up_max_age_seconds + 1)
    change = {"role": "unit_admin"}
    stale = await client.patch(f"/v1/users/{editor.id}", headers=headers, json=change)
    assert stale.status_code == 403 and _code(stale) == "step_up_required"
    code = await client.post("/v1/auth/mfa/verify", headers=headers, json={"code": admin.code()})
    assert code.status_code == 403 and _code(code) == "passkey_required"
    assert (await _assert(client, headers, key)).status_code == 204
    changed = await client.patch(f"/v1/users/{editor.id}", headers=headers, json=change)
    assert changed.status_code == 200, changed.text
    # Roles outside the setting keep their choice: an editor with a passkey may still use a code.
    editor_key = SoftAuthenticator()
    other = await make_account(role=Role.EDITOR, unit=unit)
    await _enrol(client, await sign_in(client, other), editor_key)
    assert (await password_only(client, other))["restriction"] == "mfa_required"
    assert (
        "access_token"
        in (
            await client.post(
                "/v1/auth/login",
                json={"username": other.username, "password": other.password, "totp_code": other.code()},
            )
        ).json()
    )


def test_a_setting_naming_an_unknown_role_stops_the_start(monkeypatch):
    from cli.asgi import create_app

    monkeypatch.setattr(get_settings(), "passkey_required_roles", ["leader", "chairman"])
    with pytest.raises(ValueError, match="chairman"):
        create_app(manage_resources=False)


async def test_without_the_challenge_store_a_ceremony_is_refused_not_let_through(client, monkeypatch):
    from redis.asyncio import Redis

    from auth import passkey_challenges

    leader, key = await _leader_with_passkey(client)
    headers, _ = await _restricted(client, leader)
    options = await _assertion_options(client, headers)
    # A real client of a port where no Redis listens (the rate limits keep the working one).
    unreachable = Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    monkeypatch.setattr(passkey_challenges, "get_redis", lambda: unreachable)
    refused = await client.post(
        ASSERT,
        headers=headers,
        json={"ceremony_id": options["ceremony_id"], "credential": key.get(options["options"])},
    )
    assert refused.status_code == 503 and _code(refused) == "passkey_unavailable"
    assert (await client.post(ASSERT_OPTIONS, headers=headers)).status_code == 503
    await unreachable.aclose()
    assert (await client.get("/v1/auth/sessions", headers=headers)).status_code == 403


async def test_one_authenticator_registered_on_two_accounts_at_once_is_409_not_500(client, owner_engine):
    # Both checked "not registered yet" before either had written it; the second insert broke
    # the unique credential id at commit (a 500).
    from tests.support.held_rows import while_held

    unit = await make_unit()
    accounts = [await make_account(role=Role.LEADER, unit=unit) for _ in range(2)]
    headers = [await sign_in(client, account) for account in accounts]
    key = SoftAuthenticator()
    ceremonies = [await _registration_options(client, h) for h in headers]
    answers = await while_held(
        owner_engine,
        "INSERT INTO webauthn_credentials (id, user_id, credential_id, public_key, name, aaguid,"
        " attestation_format)"
        " VALUES (gen_random_uuid(), :user, :credential, '\\x00', 'held', :aaguid, 'none')",
        {
            "user": accounts[0].id,
            "credential": key.credential_id,
            "aaguid": "00000000-0000-0000-0000-000000000000",
        },
        *(
            client.post(
                REGISTER,
                headers=h,
                json={"ceremony_id": c["ceremony_id"], "name": "k", "credential": key.create(c["options"])},
            )
            for h, c in zip(headers, ceremonies, strict=True)
        ),
    )
    assert sorted(answer.status_code for answer in answers) == [201, 409], [a.text for a in answers]
    refused = next(answer for answer in answers if answer.status_code == 409)
    assert _code(refused) == "passkey_already_registered"
    async with transaction() as session:
        rows = (await session.scalars(select(WebauthnCredential.user_id))).all()
    assert len(rows) == 1

"""Codes outside ASCII (issue 12 item 10). One rule for every code, number and id (core/codes.py):
NFKC-fold, drop separators, then ASCII only. Fullwidth and superscript digits are the digits they
stand for; Arabic-Indic, Devanagari or mixed-script digits are malformed: 422 at the API, a wrong
(counted) code in the console. Nothing raises."""

from __future__ import annotations

import hmac

import httpx
import pytest

from auth.roles import Role
from auth.totp import code_for, hash_recovery_code, matching_step, new_secret
from core import clock
from core.codes import ascii_digits, parse_ascii_int
from core.crypto import constant_time_equals, keyed_hash
from tests.support.codes import ACCEPTED, ARABIC_INDIC, FULLWIDTH, REFUSED
from tests.support.codes import current_code as _current_code
from tests.support.codes import failed_attempts as _failed_attempts
from tests.support.factories import make_account, make_unit, password_only

# --- the domain rule, without HTTP ---


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_a_folded_code_matches(name):
    secret = new_secret()
    now = clock.utcnow()
    assert matching_step(secret, ACCEPTED[name](code_for(secret, at=now)), now=now) is not None


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_a_code_outside_ascii_fails_cleanly_instead_of_raising(name):
    secret = new_secret()
    now = clock.utcnow()
    # Before the fix: "٠١٢٣٤٥".isdigit() is True and hmac.compare_digest raised TypeError.
    assert matching_step(secret, REFUSED[name](code_for(secret, at=now)), now=now) is None


def test_odd_input_never_raises():
    secret = new_secret()
    for text in ["", " ", "\x00" * 6, "\ud800" * 6, "²" * 6, "①②③④⑤⑥", "𝟏𝟐𝟑𝟒𝟓𝟔", "١" * 600, "12345６"]:
        matching_step(secret, text, now=clock.utcnow())
        hash_recovery_code(text.replace("\ud800", "x"))
    assert parse_ascii_int("²", maximum=10) is None
    assert parse_ascii_int("١٢", maximum=100) is None
    assert parse_ascii_int("99", maximum=10) is None
    assert parse_ascii_int("7", maximum=10) == 7
    assert ascii_digits("①②③") == "123"  # compatibility forms fold, like fullwidth


def test_constant_time_comparisons_accept_any_text():
    with pytest.raises(TypeError):  # why the helper exists
        hmac.compare_digest("١٢٣", "123")
    assert constant_time_equals("١٢٣", "١٢٣")
    assert not constant_time_equals("١٢٣", "123")
    assert not constant_time_equals("１２３", "123")  # secrets are never folded
    assert not constant_time_equals("\ud800", "\ud801")
    assert keyed_hash("\ud800") != keyed_hash("\ud801")


# --- the API ---


async def test_api_refuses_non_ascii_codes_with_422_and_accepts_folded_ones(client: httpx.AsyncClient):
    unit = await make_unit()
    editor = await make_account(role=Role.EDITOR, unit=unit)
    for name, spell in REFUSED.items():
        body = {
            "username": editor.username,
            "password": editor.password,
            "totp_code": spell(_current_code(editor)),
        }
        response = await client.post("/v1/auth/login", json=body)
        assert response.status_code == 422, (name, response.text)
    login = await password_only(client, editor)
    headers = {"Authorization": f"Bearer {login['access_token']}"}
    for name, spell in REFUSED.items():
        response = await client.post(
            "/v1/auth/mfa/verify", headers=headers, json={"code": spell(_current_code(editor))}
        )
        assert response.status_code == 422, (name, response.text)
        response = await client.post(
            "/v1/auth/mfa/recover", headers=headers, json={"recovery_code": spell("ABCD2345")}
        )
        assert response.status_code == 422, (name, response.text)
    # A malformed code is refused at the edge; it never counted (as "12345a" never did).
    assert await _failed_attempts(editor) == 0
    for name, spell in ACCEPTED.items():
        body = {
            "username": editor.username,
            "password": editor.password,
            "totp_code": spell(_current_code(editor)),
        }
        response = await client.post("/v1/auth/login", json=body)
        assert response.status_code == 200, (name, response.text)
        assert response.json()["restriction"] is None, name


async def test_api_enrolment_and_recovery_accept_fullwidth(client: httpx.AsyncClient):
    unit = await make_unit()
    editor = await make_account(role=Role.EDITOR, unit=unit, enrolled=False)
    headers = {"Authorization": f"Bearer {(await password_only(client, editor))['access_token']}"}
    secret = (await client.post("/v1/auth/mfa/enrol", headers=headers)).json()["secret"]
    arabic = code_for(secret, at=clock.utcnow()).translate(ARABIC_INDIC)
    refused = await client.post("/v1/auth/mfa/enrol/confirm", headers=headers, json={"code": arabic})
    assert refused.status_code == 422
    fullwidth = code_for(secret, at=clock.utcnow()).translate(FULLWIDTH)
    confirm = await client.post("/v1/auth/mfa/enrol/confirm", headers=headers, json={"code": fullwidth})
    assert confirm.status_code == 200, confirm.text
    recovery = confirm.json()["recovery_codes"][0]
    again = await password_only(client, editor)
    folded = recovery.lower().replace("-", " ").translate(FULLWIDTH)  # "abcd ２３４５"
    used = await client.post(
        "/v1/auth/mfa/recover",
        headers={"Authorization": f"Bearer {again['access_token']}"},
        json={"recovery_code": folded},
    )
    assert used.status_code == 200, used.text


async def test_api_sign_in_name_is_folded(client: httpx.AsyncClient):
    unit = await make_unit()
    member = await make_account(role=Role.MEMBER, unit=unit, enrolled=False)
    fullwidth_name = "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in member.username)
    response = await client.post(
        "/v1/auth/login", json={"username": fullwidth_name, "password": member.password}
    )
    assert response.status_code == 200, response.text
    nul = await client.post("/v1/auth/login", json={"username": "a\x00b", "password": "x"})
    assert nul.status_code == 422
